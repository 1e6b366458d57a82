/**
 * Usage records as the appliance commits them (appliance/services.ts): on LMDB, from the commit
 * thread the registry shares with the TSA. A seal's use and its time-stamp token's record go into
 * one transaction (one durable commit per seal, not two); every use is in seal.usage, counted and
 * audited in the one hash chain; a use whose seal then fails is marked so.
 */
import t from 'tap';
import { join } from 'node:path';
import { AUDIT_TABLES, createAuditLog, verifyAuditTrail } from '../audit/audit.ts';
import type { AuditRecord } from '../audit/types.ts';
import { systemClock } from '../common/clock.ts';
import { isYinxinError } from '../common/errors.ts';
import { ThreadedCommitter } from '../store/commit-thread.ts';
import { openLmdbStore } from '../store/lmdb.ts';
import { tempDir } from '../store/testing.ts';
import { createTimeStampAuthority } from '../tsa/authority.ts';
import { TOKENS_TABLE } from '../tsa/ledger.ts';
import { TimeGuard } from '../tsa/timeguard.ts';
import { SealRegistry, type SealUser } from './registry.ts';
import { CREDIT_CODE, makeSealPkiOn } from './test-support.ts';
import { simplePdf } from './testing-pdfs.ts';
import { USAGE_TABLE, type AuditedUse, type UsageRecord } from './usage.ts';

t.test('a use and its time-stamp token share one transaction from the commit thread', async (t) => {
  const store = openLmdbStore(join(tempDir(t), 'store'));
  const audit = createAuditLog({ store, clock: systemClock });
  const pki = await makeSealPkiOn(store, audit);
  const committer = new ThreadedCommitter(store, audit);
  const tsa = createTimeStampAuthority({
    signer: await pki.keys.getSigner('tsa'), certificate: pki.tsaCertificate, chain: pki.ca.caChain('issuing'), store, audit, clock: systemClock,
    timeGuard: new TimeGuard({ clock: systemClock }), policy: { default: '1.2.3.4.1', accepted: [] }, committer,
  });
  const registry = new SealRegistry({ store, keys: pki.keys, audit, clock: systemClock, ca: pki.ca, timeStamper: (q) => tsa.respond(q), committer });
  const seal = await registry.approve((await registry.request({ organization: '福州市财政局', creditCode: CREDIT_CODE, name: '财务专用章', kind: 'finance', clients: ['app1'] },
    { actor: 'operator:alice', person: 'alice' })).id, { actor: 'operator:bob', person: 'bob' });
  const app: SealUser = { actor: 'token:app1(svc)', username: 'svc', roles: [], clientId: 'app1' };

  const { transactions: before, records } = committer.stats();
  for (let i = 0; i < 4; i++) await registry.sealFile(seal.id, app, Buffer.from(`minutes ${i}`));
  await registry.sealPdf(seal.id, app, simplePdf('公文'));
  t.equal(committer.stats().records - records, 10, 'the uses and the tokens went through the commit thread');
  t.equal(committer.stats().transactions - before, 5, 'one transaction per seal: its use with its token');
  t.equal(tsa.stats().ledger.commits, 5);

  // Concurrent seals: grouped, every use counted once under its own row.
  const sealed = await Promise.all(Array.from({ length: 12 }, (_, i) => registry.sealFile(seal.id, app, Buffer.from(`file ${i}`))));
  t.ok(committer.stats().transactions - before < 5 + 12, `grouped: ${committer.stats().transactions - before - 5} transactions for 12 concurrent seals`);
  const usage = registry.usageOf(seal.id, 100);
  t.same(usage.stats, { ...usage.stats, uses: 17, pdf: 1, file: 16 });
  t.same(new Set(usage.recent.slice(0, 12).map((r) => r.documentDigest)), new Set(sealed.map((s) => s.documentDigest)), 'one row per seal');
  t.equal(store.table(TOKENS_TABLE).count(), 17);

  // A seal whose time-stamp then fails: its use, recorded from the thread, is marked failed from this one.
  const refusing = new SealRegistry({ store, keys: pki.keys, audit, clock: systemClock, ca: pki.ca, committer,
    timeStamper: async () => new Uint8Array([0x30, 0x05, 0x30, 0x03, 0x02, 0x01, 0x02]) });
  const e = await refusing.sealFile(seal.id, app, Buffer.from('x')).catch((x: unknown) => x);
  t.ok(isYinxinError(e, 'time-not-available'), String(e));
  const after = registry.usageOf(seal.id, 1);
  t.same([after.stats.uses, after.stats.failed, after.recent[0].failed], [17, 1, 'time-not-available']);
  t.equal(store.table<UsageRecord>(USAGE_TABLE).count(), 18);

  await tsa.close();
  await committer.close();
  const actions = [...store.table<AuditRecord>(AUDIT_TABLES.records).range()].map((r) => r.value).filter((r) => r.action === 'seal.use');
  const audited = (outcome: string) => actions.filter((r) => r.outcome === outcome).flatMap((r) => r.details!.uses as AuditedUse[]);
  t.same([audited('success').length, audited('failure').length], [18, 1], 'every use audited');
  t.ok(actions.filter((r) => r.outcome === 'success').length < 18, 'concurrent uses of one seal by one actor share an audit record');
  t.same(new Set(audited('success').map((u) => u.documentDigest)), new Set([...store.table<UsageRecord>(USAGE_TABLE).range()].map((r) => r.value.documentDigest)),
    'the audit trail names the document of every row in seal.usage');
  t.ok(actions.every((r) => r.actor === app.actor && r.object === `seal:${seal.id}`));
  t.same((await verifyAuditTrail(store)).problems, []);
  pki.cleanup();
  await audit.close();
  await store.close();
});
