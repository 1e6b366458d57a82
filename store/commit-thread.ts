/**
 * A Committer whose transactions run on a thread of their own (store/commit-worker.ts).
 *
 * Why: an lmdb-js transaction with a callback (the writers' callbacks read inside the transaction:
 * the TSA checks serials and moves its genTime high-water mark, every writer appends to the audit
 * chain) holds LMDB's write lock from the moment the write thread takes it until the JavaScript
 * thread that queued the callback gets round to running it. On the main thread that waits behind
 * whatever HTTP work the event loop is doing: measured under bench/tsa.ts, a TSA record took
 * 4.2-4.7 ms to commit against a 0.4 ms fsync, and with several public processes the other
 * processes waited on the lock meanwhile. The commit thread does nothing else, so it runs the
 * callback at once, and the writers' CPU (audit hashing, msgpack) leaves the main thread.
 *
 * The thread opens the same LMDB environment by path (lmdb-js shares one environment between the
 * threads of a process) and loads each writer from its module (RecordWriter.module and .name), so
 * what it writes is what InlineCommitter would. A record is still only acknowledged once the
 * thread says its transaction is durable.
 */
import { Worker } from 'node:worker_threads';
import type { AuditLog } from '../audit/types.ts';
import { YinxinError } from '../common/errors.ts';
import { BatchingCommitter, type BatchEntry, type RecordWriter } from './committer.ts';
import type { CommitBatch, CommitReply, CommitThreadInit } from './commit-worker.ts';
import type { Store } from './store.ts';

interface InFlight {
  resolve: (results: unknown[]) => void;
  reject: (e: unknown) => void;
}

export class ThreadedCommitter extends BatchingCommitter {
  readonly #init: CommitThreadInit;
  #worker: Worker | undefined;
  readonly #inFlight = new Map<number, InFlight>();
  #nextId = 1;

  /** `store` must be an LMDB store (store/lmdb.ts): the thread opens the same environment by path. */
  constructor(store: Store, audit?: AuditLog) {
    super();
    this.#init = { storePath: store.path, audit: audit !== undefined };
  }

  protected write(writers: ReadonlyArray<RecordWriter<unknown, unknown>>, entries: BatchEntry[]): Promise<unknown[]> {
    return new Promise((resolve, reject) => {
      const id = this.#nextId++;
      this.#inFlight.set(id, { resolve, reject });
      const worker = this.#thread();
      worker.ref();
      worker.postMessage({ id, writers: writers.map(({ module, name }) => ({ module, name })), entries } satisfies CommitBatch);
    });
  }

  #thread(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(new URL('./commit-worker.ts', import.meta.url), {
      workerData: this.#init,
      // It keeps one batch alive at a time; without limits V8 would let garbage grow to an
      // application's heap size before collecting.
      resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 64 },
    });
    worker.unref();
    worker.on('message', (message: 'ready' | 'closed' | CommitReply) => {
      if (typeof message === 'string') return;
      const waiting = this.#inFlight.get(message.id);
      if (!waiting) return;
      this.#settled(message.id);
      if ('results' in message) waiting.resolve(message.results);
      else waiting.reject(new YinxinError(message.error.code === 'internal' ? 'internal' : 'store-unavailable', `committing to the store failed: ${message.error.message}`));
    });
    const failed = (e: unknown) => {
      if (this.#worker !== worker) return;
      this.#worker = undefined; // the next batch starts a new thread
      const error = new YinxinError('store-unavailable', `the store's commit thread stopped: ${(e as Error)?.message ?? e}`);
      for (const [id, waiting] of this.#inFlight) {
        this.#settled(id);
        waiting.reject(error);
      }
    };
    worker.on('error', failed);
    worker.on('exit', (code) => failed(new Error(`exit code ${code}`)));
    this.#worker = worker;
    return worker;
  }

  #settled(id: number): void {
    this.#inFlight.delete(id);
    // While closing, the thread stays referenced until it says it has closed.
    if (this.#inFlight.size === 0 && !this.closed) this.#worker?.unref();
  }

  /** Waits for the records handed over so far, then stops the thread. */
  override async close(): Promise<void> {
    if (this.closed) return;
    const closing = super.close(); // hands over this turn's records (starting the thread if they are its first)
    const worker = this.#worker;
    if (!worker) return closing;
    worker.ref();
    await closing;
    const done = new Promise<void>((resolve) => {
      worker.on('message', (m) => { if (m === 'closed') resolve(); });
      worker.once('exit', () => resolve());
    });
    worker.postMessage('close');
    await done;
    this.#worker = undefined;
    await worker.terminate();
  }
}
