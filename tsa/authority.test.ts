/**
 * The TSA against openssl: its queries answered, its `ts -verify` passing, its `ts -reply -text`
 * showing the fields; altered tokens failing; refusals carrying the right failInfo.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import * as pkijs from 'pkijs';
import { toArrayBuffer } from '../common/pem.ts';
import { parseTimeStampResponse } from './client.ts';
import { AUDIT_TABLES, createAuditLog, verifyAuditTrail } from '../audit/audit.ts';
import type { AuditRecord } from '../audit/types.ts';
import { FixedClock, systemClock } from '../common/clock.ts';
import { recordsDigest, TOKENS_TABLE, type TokenRecord } from './ledger.ts';
import { MemoryStore } from './testing/memory-store.ts';
import { makeFixture, OTHER_POLICY, POLICY } from './testing/fixture.ts';

const fx = await makeFixture();
t.teardown(() => fx.cleanup());
const dataFile = fx.file('document.txt', '关于印发电子印章管理办法的通知\n');

function queryBytes(args: string[]): Uint8Array {
  const out = fx.file('q.tsq', '');
  const r = fx.run(['ts', '-query', '-data', dataFile, ...args, '-out', out]);
  if (r.code !== 0) throw new Error(r.out);
  return new Uint8Array(readFileSync(out));
}
function extractSpki(certificateDer: Uint8Array): Uint8Array {
  return new Uint8Array(pkijs.Certificate.fromBER(toArrayBuffer(certificateDer)).subjectPublicKeyInfo.toSchema().toBER(false));
}

function verify(reply: Uint8Array, extra: string[] = []) {
  const file = fx.file('reply.tsr', reply);
  return fx.run(['ts', '-verify', '-data', dataFile, '-in', file, '-CAfile', fx.pki.files.root, '-untrusted', fx.pki.files.untrusted, ...extra]);
}
function text(reply: Uint8Array): string {
  const r = fx.run(['ts', '-reply', '-in', fx.file('reply-text.tsr', reply), '-text']);
  if (r.code !== 0) throw new Error(r.out);
  return r.out;
}

t.test('a query with nonce and certReq is answered and verified by openssl', async (t) => {
  const tsa = fx.make({ precisionMs: 1 });
  const q = queryBytes(['-sha256', '-cert']);
  const reply = await tsa.respond(q);
  const v = verify(reply);
  t.equal(v.code, 0, v.out);
  t.match(v.out, /Verification: OK/);
  const shown = text(reply);
  t.match(shown, /Status: Granted\./);
  t.match(shown, /Policy OID: (tsa_policy1|1\.2\.3\.4\.1)/);
  t.match(shown, /Hash Algorithm: sha256/);
  t.match(shown, /Accuracy: 0x01 seconds/);
  t.match(shown, /Ordering: no/);
  t.match(shown, /TSA: DirName:\/C=CN\/O=Yinxin Test\/OU=TSA\/CN=Test TSA/);
  t.match(shown, /Time stamp: .*\.25 \d{4} GMT/, 'sub-second genTime, trailing zeros dropped');
  const nonce = /Nonce: 0x([0-9A-F]+)/.exec(shown)?.[1];
  const qText = fx.run(['ts', '-query', '-in', fx.file('q-text.tsq', q), '-text']).out;
  t.ok(nonce && qText.includes(nonce), 'the nonce is echoed');
  // The token carries the TSA certificate: verify without giving it.
  const noUntrusted = fx.run(['ts', '-verify', '-data', dataFile, '-in', fx.file('r2.tsr', reply), '-CAfile', fx.pki.files.root, '-untrusted', fx.pki.files.issuing]);
  t.equal(noUntrusted.code, 0, noUntrusted.out);
  const serial = /Serial number: 0x([0-9A-F]+)/.exec(shown)![1].toLowerCase();
  t.equal(serial.length, 34, '136-bit serial');
  const record = tsa.record(serial);
  t.ok(record, 'the token is recorded');
  t.equal(record!.policy, POLICY);
  t.equal(record!.hashAlg, 'SHA-256');
  t.equal(record!.nonce?.replace(/^0+/, ''), nonce!.toLowerCase().replace(/^0+/, ''));
});

t.test('without nonce and certReq, whole-second precision', async (t) => {
  const tsa = fx.make();
  const reply = await tsa.respond(queryBytes(['-sha256', '-no_nonce']));
  const shown = text(reply);
  t.notMatch(shown, /Nonce: 0x/);
  t.match(shown, /Nonce: unspecified/);
  t.match(shown, /Time stamp: \w+ +\d+ \d\d:\d\d:\d\d \d{4} GMT/, 'no fraction');
  const token = fx.file('token.der', parseTimeStampResponse(reply).token!);
  const certs = fx.run(['pkcs7', '-inform', 'DER', '-in', token, '-print_certs']);
  t.notMatch(certs.out, /BEGIN CERTIFICATE/, 'no certificate without certReq');
  const v = verify(reply);
  t.equal(v.code, 0, v.out);
});

for (const digest of ['sha384', 'sha512', 'sha3-256']) {
  t.test(`imprint algorithm ${digest}`, async (t) => {
    const reply = await fx.make().respond(queryBytes([`-${digest}`, '-cert']));
    const v = verify(reply);
    t.equal(v.code, 0, v.out);
    t.match(text(reply), new RegExp(`Hash Algorithm: ${digest}`));
  });
}

t.test('SHA-1 is refused by default (badAlg) and accepted when configured', async (t) => {
  const refused = await fx.make().respond(queryBytes(['-sha1', '-cert']));
  t.match(text(refused), /Status: Rejected/);
  t.match(text(refused), /unrecognized or unsupported algorithm/);
  t.same(parseTimeStampResponse(refused).failInfo, ['badAlg']);
  const accepted = await fx.make({ acceptSha1: true }).respond(queryBytes(['-sha1', '-cert']));
  t.equal(verify(accepted).code, 0);
});

t.test('policy: an accepted one is used, another is refused (unacceptedPolicy)', async (t) => {
  const tsa = fx.make();
  const granted = await tsa.respond(queryBytes(['-sha256', '-cert', '-tspolicy', OTHER_POLICY]));
  t.match(text(granted), /Policy OID: (tsa_policy2|1\.2\.3\.4\.2)/);
  t.equal(verify(granted).code, 0);
  const refused = await tsa.respond(queryBytes(['-sha256', '-cert', '-tspolicy', '1.2.3.4.99']));
  t.match(text(refused), /policy is not supported/i);
  t.same(parseTimeStampResponse(refused).failInfo, ['unacceptedPolicy']);
});

t.test('a token whose serial or signature is altered fails openssl verification', async (t) => {
  const reply = await fx.make().respond(queryBytes(['-sha256', '-cert']));
  t.equal(verify(reply).code, 0, 'the original verifies');
  const serial = /Serial number: 0x([0-9A-F]+)/.exec(text(reply))![1];
  const at = Buffer.from(reply).indexOf(Buffer.from(serial, 'hex'));
  t.ok(at > 0);
  const badSerial = new Uint8Array(reply);
  badSerial[at + 10] ^= 0x01;
  const v1 = verify(badSerial);
  t.not(v1.code, 0, 'altered serial fails');
  t.notMatch(v1.out, /Verification: OK/);
  const badSignature = new Uint8Array(reply);
  badSignature[badSignature.length - 3] ^= 0x01;
  const v2 = verify(badSignature);
  t.not(v2.code, 0, 'altered signature fails');
  t.notMatch(v2.out, /Verification: OK/);
  // And a token for other data does not verify for this data.
  const other = fx.file('other.txt', 'something else');
  const v3 = fx.run(['ts', '-verify', '-data', other, '-in', fx.file('r3.tsr', reply), '-CAfile', fx.pki.files.root, '-untrusted', fx.pki.files.untrusted]);
  t.not(v3.code, 0);
});

t.test('concurrent requests get distinct serials, all recorded, in few commits', async (t) => {
  const store = new MemoryStore();
  const tsa = fx.make({ store });
  const q = queryBytes(['-sha256', '-cert']);
  const replies = await Promise.all(Array.from({ length: 200 }, () => tsa.respond(q)));
  const serials = new Set(replies.map((r) => {
    const m = /Serial number: 0x([0-9A-F]+)/.exec(text(r))!;
    return m[1].toLowerCase();
  }).slice(0, 20));
  t.equal(serials.size, 20);
  t.equal(tsa.stats().issued, 200);
  t.equal(store.table('tsa.tokens').count(), 200);
  t.ok(store.transactions < 20, `group commit: ${store.transactions} transactions for 200 tokens`);
});

t.test('each group commit appends one audit record naming its tokens, with a digest of their ledger rows', async (t) => {
  const store = new MemoryStore();
  const audit = createAuditLog({ store, clock: systemClock });
  const tsa = fx.make({ store, audit });
  const q = queryBytes(['-sha256', '-cert']);
  const replies = await Promise.all(Array.from({ length: 120 }, () => tsa.respond(q)));
  t.ok(replies.every((r) => parseTimeStampResponse(r).status === 0));
  const tokens = store.table<TokenRecord>(TOKENS_TABLE);
  const stamps = [...store.table<AuditRecord>(AUDIT_TABLES.records).range()].map((e) => e.value).filter((r) => r.action === 'tsa.stamp');
  t.ok(stamps.length >= 1 && stamps.length < 120, `${stamps.length} audit records for 120 tokens`);
  const listed = stamps.flatMap((r) => r.details!.serials as string[]);
  t.equal(new Set(listed).size, 120, 'every token is named once');
  t.equal(tokens.count(), 120);
  for (const r of stamps) {
    const serials = r.details!.serials as string[];
    t.equal(r.details!.count, serials.length);
    t.equal(r.details!.recordsDigest, recordsDigest(serials.map((serial) => ({ serial, record: tokens.get(serial)! }))));
  }
  // A ledger row changed afterwards no longer matches the digest its audit record carries.
  const [victim] = stamps[0].details!.serials as string[];
  await store.transaction((tx) => tx.put(tokens, victim, { ...tokens.get(victim)!, imprint: '00'.repeat(32) }));
  const serials = stamps[0].details!.serials as string[];
  t.not(stamps[0].details!.recordsDigest, recordsDigest(serials.map((serial) => ({ serial, record: tokens.get(serial)! }))));
  t.same((await verifyAuditTrail(store)).problems, []);
});

t.test('no token is sent when its record cannot be written', async (t) => {
  const store = new MemoryStore();
  const failures: unknown[] = [];
  const tsa = fx.make({ store, onSystemFailure: (e) => failures.push(e) });
  store.failNextCommits = 1;
  const reply = await tsa.respond(queryBytes(['-sha256', '-cert']));
  const parsed = parseTimeStampResponse(reply);
  t.equal(parsed.status, 2);
  t.same(parsed.failInfo, ['systemFailure']);
  t.equal(parsed.token, undefined);
  t.equal(failures.length, 1);
  t.equal(store.table('tsa.tokens').count(), 0);
  t.match(text(reply), /Status: Rejected/);
});

t.test('a serial already taken is never reused', async (t) => {
  const store = new MemoryStore();
  const tsa = fx.make({ store });
  const first = await tsa.respond(queryBytes(['-sha256']));
  t.equal(parseTimeStampResponse(first).status, 0);
  // Pretend every serial the CSPRNG gives is taken: the authority must refuse rather than reuse.
  const tokens = store.table('tsa.tokens');
  const realTransaction = store.transaction.bind(store);
  store.transaction = (fn) => realTransaction((tx) => fn({ ...tx, get: (tbl, key) => (tbl.name === 'tsa.tokens' ? ({} as never) : tx.get(tbl, key)) }));
  const refused = await tsa.respond(queryBytes(['-sha256']));
  t.same(parseTimeStampResponse(refused).failInfo, ['systemFailure']);
  t.equal(tokens.count(), 1);
});

t.test('the TSA certificate must have a critical timeStamping-only EKU', async (t) => {
  const notCritical = fx.pki.certify(fx.signer.publicKeyInfo, 'extendedKeyUsage=timeStamping\nkeyUsage=critical,digitalSignature\n', 'noncritical');
  const extraPurpose = fx.pki.certify(fx.signer.publicKeyInfo, 'extendedKeyUsage=critical,timeStamping,codeSigning\n', 'extra');
  for (const certificate of [notCritical, extraPurpose, fx.pki.issuing]) {
    t.throws(() => fx.make({ certificate }), { code: 'config-invalid' });
  }
  t.throws(() => fx.make({ certificate: new Uint8Array([0x30, 0x00]) }), { code: 'config-invalid' });
  const otherKey = fx.pki.certify(new Uint8Array(fx.pki.root.length ? extractSpki(fx.pki.root) : []), 'extendedKeyUsage=critical,timeStamping\n', 'otherkey');
  t.throws(() => fx.make({ certificate: otherKey }), { code: 'config-invalid', message: /does not certify the public key/ });
});

t.test('time: a backward jump, an unsynchronised clock and a clock behind earlier runs all refuse with timeNotAvailable', async (t) => {
  const store = new MemoryStore();
  const clock = new FixedClock('2026-05-01T10:00:00Z');
  const tsa = fx.make({ store, clock });
  const q = queryBytes(['-sha256', '-cert']);
  t.equal(parseTimeStampResponse(await tsa.respond(q)).status, 0);
  clock.advance(-5000);
  const refused = await tsa.respond(q);
  t.same(parseTimeStampResponse(refused).failInfo, ['timeNotAvailable']);
  t.match(text(refused), /time source.*not available|time.*not available/i);
  t.equal(tsa.stats().clock.trusted, false);
  t.equal(tsa.stats().clock.backwardJumps, 1);
  clock.advance(5001);
  t.equal(parseTimeStampResponse(await tsa.respond(q)).status, 0, 'stamps again once the clock passes the times already used');

  // A restart with the clock behind the latest genTime recorded.
  const restartClock = new FixedClock('2026-05-01T09:00:00Z');
  const restarted = fx.make({ store, clock: restartClock });
  t.same(parseTimeStampResponse(await restarted.respond(q)).failInfo, ['timeNotAvailable']);
  restarted.timeGuard.acknowledge();
  t.equal(parseTimeStampResponse(await restarted.respond(q)).status, 0, 'an operator may acknowledge');

  let synced = false;
  const guarded = fx.make({ guard: { syncCheck: async () => ({ synchronised: synced, detail: synced ? 'ok' : 'chrony: leap status Not synchronised' }) } });
  await guarded.timeGuard.checkSync();
  t.same(parseTimeStampResponse(await guarded.respond(q)).failInfo, ['timeNotAvailable']);
  t.equal(guarded.stats().clock.synchronised, false);
  synced = true;
  await guarded.timeGuard.checkSync();
  t.equal(parseTimeStampResponse(await guarded.respond(q)).status, 0);
  const broken = fx.make({ guard: { syncCheck: async () => { throw new Error('chronyc: command not found'); } } });
  await broken.timeGuard.checkSync();
  t.same(parseTimeStampResponse(await broken.respond(q)).failInfo, ['timeNotAvailable'], 'a failing check fails closed');
});

t.test('serials are time-ordered: 0x01, genTime in milliseconds (48 bits), then 80 random bits', async (t) => {
  const at = Date.UTC(2026, 10, 21, 9, 30, 15, 250);
  const tsa = fx.make({ clock: new FixedClock(at), precisionMs: 1 });
  const q = queryBytes(['-sha256']);
  const serials = (await Promise.all([tsa.respond(q), tsa.respond(q)])).map((r) => /Serial number: 0x([0-9A-F]+)/.exec(text(r))![1]);
  for (const serial of serials) {
    t.equal(serial.length, 34);
    t.equal(serial.slice(0, 2), '01');
    t.equal(parseInt(serial.slice(2, 14), 16), at, 'genTime in the serial');
  }
  t.not(serials[0].slice(14), serials[1].slice(14), 'random part differs within one millisecond');
});

t.test('a record whose signature then fails is voided with an audit record, and no token is sent', async (t) => {
  const store = new MemoryStore();
  const audit = createAuditLog({ store, clock: systemClock });
  const failing = Object.create(fx.signer) as typeof fx.signer;
  failing.sign = async () => { throw new Error('CKR_DEVICE_REMOVED'); };
  const failures: unknown[] = [];
  const tsa = fx.make({ store, audit, signer: failing, onSystemFailure: (e) => failures.push(e) });
  const reply = await tsa.respond(queryBytes(['-sha256', '-cert']));
  t.same(parseTimeStampResponse(reply).failInfo, ['systemFailure']);
  t.equal(parseTimeStampResponse(reply).token, undefined);
  // The record was committed while the HSM signed; void() follows the failure.
  await new Promise((r) => setTimeout(r, 20));
  const rows = [...store.table<TokenRecord>(TOKENS_TABLE).range()];
  t.equal(rows.length, 1);
  t.match(rows[0].value.voided, /CKR_DEVICE_REMOVED/);
  const voids = [...store.table<AuditRecord>(AUDIT_TABLES.records).range()].map((r) => r.value).filter((r) => r.action === 'tsa.void');
  t.equal(voids.length, 1);
  t.equal(voids[0].object, `tsa-tokens:${rows[0].key}`);
  t.same((await verifyAuditTrail(store)).problems, []);
  t.equal(failures.length, 1);
});
