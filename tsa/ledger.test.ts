/**
 * The TSA's ledger committed from the appliance's commit thread (store/commit-thread.ts) on a real
 * LMDB store: records and audit chain, durable before a token goes, serials never reused, and a
 * store that cannot be written makes the TSA refuse.
 */
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AUDIT_TABLES, createAuditLog, verifyAuditTrail } from '../audit/audit.ts';
import type { AuditRecord } from '../audit/types.ts';
import { systemClock } from '../common/clock.ts';
import { ThreadedCommitter } from '../store/commit-thread.ts';
import type { Store } from '../store/store.ts';
import { openLmdbStore } from '../store/lmdb.ts';
import { buildTimeStampQuery, parseTimeStampResponse } from './client.ts';
import { TokenLedger, TOKENS_TABLE, type TokenRecord } from './ledger.ts';
import { makeFixture } from './testing/fixture.ts';

const fx = await makeFixture();
const dir = mkdtempSync(join(tmpdir(), 'yinxin-ledger-'));
t.teardown(() => {
  fx.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const record = (n: number): TokenRecord => ({ time: new Date(1_700_000_000_000 + n).toISOString(), imprint: 'ab'.repeat(32), hashAlg: 'SHA-256', policy: '1.2.3.4.1' });

t.test('tokens recorded from the thread: in tsa.tokens, one audit record per commit, one chain with the main thread', async (t) => {
  const store = openLmdbStore(join(dir, 'a'));
  const audit = createAuditLog({ store, clock: systemClock });
  const committer = new ThreadedCommitter(store, audit);
  const tsa = fx.make({ store, audit, committer });
  const query = buildTimeStampQuery(new TextEncoder().encode('公文'), { certReq: true }).der;
  // Tokens and main-thread audit records interleaved: both append to one hash chain.
  const replies = await Promise.all([
    ...Array.from({ length: 60 }, () => tsa.respond(query)),
    store.transaction((tx) => audit.append(tx, { actor: 'test', action: 'main.thread', object: 'x', outcome: 'success' })),
  ]);
  const tokens = replies.slice(0, 60).map((r) => parseTimeStampResponse(r as Uint8Array));
  t.ok(tokens.every((p) => p.status === 0), 'all granted');
  t.equal(tsa.stats().ledger.recorded, 60);
  t.equal(tsa.stats().ledger.waiting, 0);
  await tsa.close();
  await committer.close();
  t.equal(store.table(TOKENS_TABLE).count(), 60, 'every token recorded');
  const stamps = [...store.table<AuditRecord>(AUDIT_TABLES.records).range()].map((r) => r.value).filter((r) => r.action === 'tsa.stamp');
  t.equal(stamps.reduce((n, r) => n + (r.details!.count as number), 0), 60);
  t.ok(stamps.length < 10, `group commit from the thread: ${stamps.length} commits`);
  t.same((await verifyAuditTrail(store)).problems, []);
  // The main thread's store is still open and writable after the thread closed its handle.
  await store.transaction((tx) => audit.append(tx, { actor: 'test', action: 'after.close', object: 'x', outcome: 'success' }));
  t.same((await verifyAuditTrail(store)).problems, []);
  await store.close();
});

t.test('a serial already recorded is refused (false), not overwritten', async (t) => {
  const store = openLmdbStore(join(dir, 'b'));
  const committer = new ThreadedCommitter(store);
  const ledger = new TokenLedger(store, undefined, committer);
  t.equal(await ledger.record('01aa', record(1), new Date()), true);
  t.equal(await ledger.record('01aa', record(2), new Date()), false);
  t.equal(await ledger.record('01bb', record(3), new Date()), true);
  t.same(ledger.get('01aa'), record(1));
  t.same(ledger.stats(), { recorded: 2, commits: 3, waiting: 0 });
  await ledger.close();
  await committer.close();
  await store.close();
});

t.test('close() waits for the records handed over; a ledger closes the committer only if it made it', async (t) => {
  const store = openLmdbStore(join(dir, 'c'));
  const committer = new ThreadedCommitter(store);
  const shared = new TokenLedger(store, undefined, committer);
  const own = new TokenLedger(store);
  const pending = Array.from({ length: 50 }, (_, i) => (i % 2 ? shared : own).record(`02${i.toString(16).padStart(4, '0')}`, record(i), new Date()));
  await Promise.all([shared.close(), own.close()]);
  t.same(await Promise.all(pending), Array(50).fill(true));
  t.equal(store.table(TOKENS_TABLE).count(), 50);
  await t.rejects(own.record('03', record(0), new Date()), { code: 'store-unavailable' });
  t.equal(await shared.record('03', record(0), new Date()), true, 'the shared committer is still open');
  await committer.close();
  await store.close();
});

t.test('a thread that cannot open the store fails the records (store-unavailable), and the TSA refuses', async (t) => {
  const notADirectory = join(dir, 'file');
  writeFileSync(notADirectory, 'x');
  const store = openLmdbStore(join(dir, 'd'));
  const broken = new ThreadedCommitter({ ...store, path: notADirectory } as Store);
  const failures: unknown[] = [];
  const tsa = fx.make({ store, committer: broken, onSystemFailure: (e) => failures.push(e) });
  const reply = parseTimeStampResponse(await tsa.respond(buildTimeStampQuery(new Uint8Array([1]), {}).der));
  t.same(reply.failInfo, ['systemFailure']);
  t.equal(reply.token, undefined);
  t.equal(failures.length, 1);
  t.match(failures[0], { code: 'store-unavailable', message: /commit thread/ });
  t.equal(store.table(TOKENS_TABLE).count(), 0);
  await broken.close();
  await store.close();
});
