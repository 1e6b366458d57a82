/**
 * A TokenLedger whose commits run on a thread of their own (tsa/ledger-worker.ts).
 *
 * Why: an lmdb-js transaction with a callback (the ledger's: it checks serials, moves the genTime
 * high-water mark and appends to the audit chain, all of which read inside the transaction) holds
 * LMDB's write lock from the moment the write thread takes it until the JavaScript thread that
 * queued the callback gets round to running it. On the main thread that waits behind whatever
 * HTTP work the event loop is doing: measured under bench/tsa.ts, a record took 4.2-4.7 ms to
 * commit against a 0.4 ms fsync, and with several public processes the other processes waited
 * on the lock meanwhile. The ledger thread does nothing else, so it runs the callback at once.
 *
 * Reads (get, latestGenTime) and the rare void() stay on the caller's thread and store.
 * A token is still only sent once the ledger thread says its record is committed (fsync'd).
 */
import { Worker } from 'node:worker_threads';
import type { AuditLog } from '../audit/types.ts';
import { YinxinError } from '../common/errors.ts';
import { TurnBatch } from '../common/turn-batch.ts';
import type { Store } from '../store/store.ts';
import { TokenLedger, type Ledger, type LedgerStats, type TokenRecord } from './ledger.ts';
import type { LedgerBatch, LedgerReply, LedgerThreadInit } from './ledger-worker.ts';

interface Pending {
  entry: [string, TokenRecord, number];
  resolve: (written: boolean) => void;
  reject: (e: unknown) => void;
}

export class ThreadedTokenLedger implements Ledger {
  readonly #local: TokenLedger;
  readonly #init: LedgerThreadInit;
  #worker: Worker | undefined;
  /** The records of one event-loop turn go to the thread as one batch, one transaction. */
  readonly #pending = new TurnBatch<Pending>((batch) => this.#send(batch));
  readonly #inFlight = new Map<number, Pending[]>();
  #nextId = 1;
  #inFlightRecords = 0;
  #commits = 0;
  #recorded = 0;
  #closed = false;

  /** `store` must be an LMDB store (store/lmdb.ts): the thread opens the same environment by path. */
  constructor(store: Store, audit?: AuditLog) {
    this.#local = new TokenLedger(store, audit);
    this.#init = { storePath: store.path, audit: audit !== undefined };
  }

  latestGenTime(): Date | undefined {
    return this.#local.latestGenTime();
  }

  get(serialHex: string): TokenRecord | undefined {
    return this.#local.get(serialHex);
  }

  void(serialHex: string, reason: string): Promise<void> {
    return this.#local.void(serialHex, reason);
  }

  record(serialHex: string, record: TokenRecord, genTime: Date): Promise<boolean> {
    if (this.#closed) return Promise.reject(new YinxinError('store-unavailable', 'the TSA ledger is closed'));
    return new Promise((resolve, reject) => {
      this.#pending.add({ entry: [serialHex, record, genTime.getTime()], resolve, reject });
    });
  }

  #send(batch: Pending[]): void {
    const id = this.#nextId++;
    this.#inFlight.set(id, batch);
    this.#inFlightRecords += batch.length;
    const worker = this.#thread();
    worker.ref();
    worker.postMessage({ id, entries: batch.map((p) => p.entry) } satisfies LedgerBatch);
  }

  #thread(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(new URL('./ledger-worker.ts', import.meta.url), {
      workerData: this.#init,
      // It keeps one batch alive at a time; without limits V8 would let garbage grow to an
      // application's heap size before collecting.
      resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 64 },
    });
    worker.unref();
    worker.on('message', (message: 'ready' | 'closed' | LedgerReply) => {
      if (typeof message === 'string') return;
      const batch = this.#inFlight.get(message.id);
      if (!batch) return;
      this.#settle(message.id, batch);
      if ('written' in message) {
        this.#commits++;
        batch.forEach((p, i) => {
          if (message.written[i]) this.#recorded++;
          p.resolve(message.written[i]);
        });
      } else {
        const error = new YinxinError('store-unavailable', `recording time-stamp tokens failed: ${message.error.message}`);
        for (const p of batch) p.reject(error);
      }
    });
    const failed = (e: unknown) => {
      if (this.#worker !== worker) return;
      this.#worker = undefined; // the next batch starts a new thread
      const error = new YinxinError('store-unavailable', `the TSA ledger thread stopped: ${(e as Error)?.message ?? e}`);
      for (const [id, batch] of this.#inFlight) {
        this.#settle(id, batch);
        for (const p of batch) p.reject(error);
      }
    };
    worker.on('error', failed);
    worker.on('exit', (code) => failed(new Error(`exit code ${code}`)));
    this.#worker = worker;
    return worker;
  }

  #settle(id: number, batch: Pending[]): void {
    this.#inFlight.delete(id);
    this.#inFlightRecords -= batch.length;
    // While closing, the thread stays referenced until it says it has closed.
    if (this.#inFlight.size === 0 && !this.#closed) this.#worker?.unref();
  }

  stats(): LedgerStats {
    return { recorded: this.#recorded, commits: this.#commits, waiting: this.#pending.size + this.#inFlightRecords };
  }

  /** Waits for the records handed over so far, then stops the thread. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#pending.flush(); // starts the thread if these are its first records
    const worker = this.#worker;
    if (!worker) return;
    const done = new Promise<void>((resolve) => {
      worker.on('message', (m) => { if (m === 'closed') resolve(); });
      worker.once('exit', () => resolve());
    });
    worker.ref();
    worker.postMessage('close');
    await done;
    this.#worker = undefined;
    await worker.terminate();
  }
}
