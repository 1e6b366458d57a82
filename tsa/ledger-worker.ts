/**
 * The ledger thread (tsa/ledger-thread.ts): commits the TSA's token records and their audit
 * records from a thread of their own. It opens the process's LMDB environment (lmdb-js shares
 * one environment between the threads of a process) and runs the same TokenLedger as the
 * in-thread ledger, so what is written is identical; only where the transaction runs differs.
 *
 * Messages in: { id, entries: [serialHex, record, genTimeMs][] } (each message is one store
 * transaction) or 'close'. Out: 'ready', { id, written } or { id, error }, 'closed'.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createAuditLog } from '../audit/audit.ts';
import { systemClock } from '../common/clock.ts';
import { openLmdbStore } from '../store/lmdb.ts';
import { TokenLedger, type TokenRecord } from './ledger.ts';

export interface LedgerThreadInit { storePath: string; audit: boolean }
export interface LedgerBatch { id: number; entries: Array<[serialHex: string, record: TokenRecord, genTimeMs: number]> }
export type LedgerReply = { id: number; written: boolean[] } | { id: number; error: { message: string; code?: string } };

const init = workerData as LedgerThreadInit;
const store = openLmdbStore(init.storePath);
// No signer here: the audit head is signed by the process's own audit log, on its schedule.
const audit = init.audit ? createAuditLog({ store, clock: systemClock }) : undefined;
const ledger = new TokenLedger(store, audit);
const port = parentPort!;

/** Batches being committed: close waits for them. */
const committing = new Set<Promise<unknown>>();

port.on('message', (message: LedgerBatch | 'close') => {
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
  // Recorded in one task, so TokenLedger commits them in one transaction.
  const commit = Promise.all(entries.map(([serial, record, genTime]) => ledger.record(serial, record, new Date(genTime)))).then(
    (written) => port.postMessage({ id, written } satisfies LedgerReply),
    (e: unknown) => port.postMessage({ id, error: { message: (e as Error)?.message ?? String(e), code: (e as { code?: string })?.code } } satisfies LedgerReply),
  );
  committing.add(commit);
  void commit.finally(() => committing.delete(commit));
});
port.postMessage('ready');
