/**
 * The committers (store/committer.ts, store/commit-thread.ts) on a real LMDB store: the records of
 * one turn, of every writer, in one durable transaction; a writer that throws loses the whole
 * transaction and nothing else; close() waits; the thread fails cleanly. The same tests run on
 * both committers: what the thread writes must be what the caller's thread would.
 */
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AUDIT_TABLES, createAuditLog, verifyAuditTrail } from '../audit/audit.ts';
import type { AuditRecord } from '../audit/types.ts';
import { systemClock } from '../common/clock.ts';
import { ThreadedCommitter } from './commit-thread.ts';
import { InlineCommitter, type Committer } from './committer.ts';
import { openLmdbStore } from './lmdb.ts';
import type { Store } from './store.ts';
import { tempDir } from './testing.ts';
import { missingWriter, ROWS_TABLE, testCounts, testRows } from './testing-writers.ts';

const kinds = {
  inline: (store: Store, audit?: ReturnType<typeof createAuditLog>) => new InlineCommitter(store, audit),
  thread: (store: Store, audit?: ReturnType<typeof createAuditLog>) => new ThreadedCommitter(store, audit),
};

for (const [kind, make] of Object.entries(kinds)) {
  t.test(`${kind}: one turn's records of two writers in one transaction, audited in the process's one chain`, async (t) => {
    const store = openLmdbStore(join(tempDir(t), 'store'));
    const audit = createAuditLog({ store, clock: systemClock });
    const committer: Committer = make(store, audit);
    const rows = Array.from({ length: 40 }, (_, i) => committer.commit(testRows, { key: `k${i}`, value: `v${i}` }));
    const counts = ['a', 'b', 'a'].map((c) => committer.commit(testCounts, c));
    // A main-thread transaction in between: both append to one hash chain.
    const main = store.transaction((tx) => audit.append(tx, { actor: 'test', action: 'main.thread', object: 'x', outcome: 'success' }));
    const committed = await Promise.all([...rows, ...counts]);
    await main;
    t.same(committed.map((c) => c.result), [...Array(40).fill(true), 1, 1, 2], 'each writer saw its records in order');
    t.equal(new Set(committed.map((c) => c.transaction)).size, 1, 'one transaction');
    t.same(committer.stats(), { transactions: 1, records: 43, waiting: 0 });
    t.equal(store.table(ROWS_TABLE).count(), 40);
    // A taken key is the writer's answer, not a failure of the transaction.
    const [again, fresh] = await Promise.all([committer.commit(testRows, { key: 'k0', value: 'x' }), committer.commit(testRows, { key: 'k40', value: 'y' })]);
    t.same([again.result, fresh.result], [false, true]);
    t.equal(store.table<string>(ROWS_TABLE).get('k0'), 'v0', 'not overwritten');
    await committer.close();
    const audited = [...store.table<AuditRecord>(AUDIT_TABLES.records).range()].map((r) => r.value.action);
    t.equal(audited.filter((a) => a === 'test.row').length, 41);
    t.ok(audited.includes('main.thread'));
    t.same((await verifyAuditTrail(store)).problems, []);
    // The store stays open and writable after the thread closed its handle.
    await store.transaction((tx) => audit.append(tx, { actor: 'test', action: 'after.close', object: 'x', outcome: 'success' }));
    t.same((await verifyAuditTrail(store)).problems, []);
    await audit.close();
    await store.close();
  });

  t.test(`${kind}: a writer that throws loses its whole transaction, the other writer's records too, and only it`, async (t) => {
    const store = openLmdbStore(join(tempDir(t), 'store'));
    const committer = make(store);
    const results = await Promise.allSettled([committer.commit(testRows, { key: 'lost', value: '1' }), committer.commit(testCounts, 'fail')]);
    t.same(results.map((r) => r.status), ['rejected', 'rejected']);
    t.match((results[0] as PromiseRejectedResult).reason, { message: /cannot be written/ });
    t.equal(store.table(ROWS_TABLE).count(), 0, 'nothing of it written');
    t.same((await committer.commit(testRows, { key: 'kept', value: '2' })).result, true, 'the next transaction commits');
    t.same(committer.stats(), { transactions: 1, records: 1, waiting: 0 });
    await t.rejects(committer.commit(missingWriter, 'x'), { code: 'internal' });
    await committer.close();
    await store.close();
  });

  t.test(`${kind}: close() waits for the records handed over, then refuses more`, async (t) => {
    const store = openLmdbStore(join(tempDir(t), 'store'));
    const committer = make(store);
    const pending = Array.from({ length: 50 }, (_, i) => committer.commit(testRows, { key: `c${i}`, value: '' }));
    await committer.close();
    t.same((await Promise.all(pending)).map((c) => c.result), Array(50).fill(true));
    t.equal(store.table(ROWS_TABLE).count(), 50);
    await t.rejects(committer.commit(testRows, { key: 'late', value: '' }), { code: 'store-unavailable' });
    await store.close();
  });
}

t.test('thread: one that cannot open the store fails its records with store-unavailable', async (t) => {
  const dir = tempDir(t);
  const notADirectory = join(dir, 'file');
  writeFileSync(notADirectory, 'x');
  const store = openLmdbStore(join(dir, 'store'));
  const broken = new ThreadedCommitter({ ...store, path: notADirectory } as Store);
  await t.rejects(broken.commit(testRows, { key: 'x', value: '' }), { code: 'store-unavailable', message: /commit thread/ });
  await broken.close();
  t.equal(store.table(ROWS_TABLE).count(), 0);
  await store.close();
});
