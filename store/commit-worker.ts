/**
 * The commit thread (store/commit-thread.ts): runs each batch of records in one transaction on
 * the process's LMDB environment, with the writers named in the batch, loaded from their modules.
 *
 * Messages in: CommitBatch (one store transaction each, in the order they came) or 'close'.
 * Out: 'ready', CommitReply, 'closed'.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createAuditLog } from '../audit/audit.ts';
import { systemClock } from '../common/clock.ts';
import { writeBatch, type BatchEntry, type BatchWrite, type RecordWriter, type WriterContext, type WriterName } from './committer.ts';
import { openLmdbStore } from './lmdb.ts';

export interface CommitThreadInit { storePath: string; audit: boolean }
export interface CommitBatch { id: number; writers: WriterName[]; entries: BatchEntry[] }
export type CommitReply = { id: number; results: unknown[] } | { id: number; error: { message: string; code?: string } };

const init = workerData as CommitThreadInit;
const store = openLmdbStore(init.storePath);
// No signer here: the audit head is signed by the process's own audit log, on its schedule.
const audit = init.audit ? createAuditLog({ store, clock: systemClock }) : undefined;
const context: WriterContext = { store, audit };
const port = parentPort!;

const writers = new Map<string, BatchWrite<unknown, unknown>>();

async function load({ module, name }: WriterName): Promise<BatchWrite<unknown, unknown>> {
  const key = `${module}#${name}`;
  let write = writers.get(key);
  if (!write) {
    const writer = (await import(module))[name] as RecordWriter<unknown, unknown> | undefined;
    if (typeof writer?.create !== 'function') throw Object.assign(new Error(`${module} exports no record writer ${name}`), { code: 'internal' });
    writers.set(key, write = writer.create(context));
  }
  return write;
}

/** Batches start their transactions in the order they came, after the writers of earlier ones loaded. */
let loaded: Promise<unknown> = Promise.resolve();
const committing = new Set<Promise<unknown>>();

port.on('message', (message: CommitBatch | 'close') => {
  if (message === 'close') {
    void (async () => {
      await Promise.allSettled(committing);
      await audit?.close();
      await store.close();
      port.postMessage('closed');
    })();
    return;
  }
  const { id, entries } = message;
  const writes = loaded.then(() => Promise.all(message.writers.map(load)));
  loaded = writes.catch(() => undefined);
  const commit = writes.then((w) => store.transaction((tx) => writeBatch(tx, w, entries))).then(
    (results) => port.postMessage({ id, results } satisfies CommitReply),
    (e: unknown) => port.postMessage({ id, error: { message: (e as Error)?.message ?? String(e), code: (e as { code?: string })?.code } } satisfies CommitReply),
  );
  committing.add(commit);
  void commit.finally(() => committing.delete(commit));
});
port.postMessage('ready');
