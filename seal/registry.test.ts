/**
 * The registry and the verifier together: request by a seal-admin, approval by another person
 * (the same person refused), use allowed only to the listed users/roles/clients, suspended and
 * revoked seals refused, every use audited and counted; the verifier accepts two seals, refuses
 * a changed byte (agreeing with pdfsig), tells a later content change from a later seal, reports
 * revocation at signing time, and checks a file with its .p7s.
 */
import t from 'tap';
import { isYinxinError } from '../common/errors.ts';
import { SealRegistry, type SealUser } from './registry.ts';
import { makeSealPki, run, CREDIT_CODE } from './test-support.ts';
import { simplePdf } from './testing-pdfs.ts';
import { caStatusLookup, verifyDetached, verifyPdf, type SealVerifyOptions } from './verify.ts';

const pki = await makeSealPki();
t.teardown(() => pki.cleanup());
const registry = new SealRegistry({ store: pki.store, keys: pki.keys, audit: pki.audit, clock: pki.clock, ca: pki.ca, timeStamper: pki.timeStamper });
const alice = { actor: 'operator:alice', person: 'alice' };
const bob = { actor: 'token:t1(bob)', person: 'bob' };
const clerk: SealUser = { actor: 'operator:clerk', username: 'clerk', roles: [] };
const stranger: SealUser = { actor: 'operator:eve', username: 'eve', roles: ['auditor'] };
const client: SealUser = { actor: 'token:app1(svc)', username: 'svc', roles: [], clientId: 'app1' };
const verifyOptions: SealVerifyOptions = {
  trustAnchors: [pki.root], statusOf: caStatusLookup(pki.ca),
  sealOf: (der) => {
    const s = registry.list().find((x) => x.certificateSerial && Buffer.compare(Buffer.from(pki.ca.get(x.ca, x.certificateSerial)!.der), Buffer.from(der)) === 0);
    return s && { id: s.id, name: s.name, kind: s.kind, organization: s.organization };
  },
};

async function error(p: Promise<unknown>): Promise<unknown> {
  return p.then(() => undefined, (e: unknown) => e);
}

const office = await registry.request({ organization: '福州市人民政府办公厅', creditCode: CREDIT_CODE, name: '福州市人民政府办公厅公章', kind: 'official', users: ['clerk'], clients: ['app1'] }, alice);
const finance = await registry.request({ organization: '福州市财政局', creditCode: CREDIT_CODE, name: '财务专用章', kind: 'finance', roles: ['ra-officer'] }, alice);

t.test('request and approval: separation of duties, pending seals unusable', async (t) => {
  t.equal(office.state, 'pending');
  t.ok(isYinxinError(await error(registry.sealPdf(office.id, clerk, simplePdf())), 'conflict'), 'pending seal cannot be used');
  const sameAlice = await error(registry.approve(office.id, { actor: 'token:x(alice)', person: 'alice' }));
  t.ok(isYinxinError(sameAlice, 'separation-of-duties'), 'alice cannot approve her own request with another credential');
  t.notOk(await pki.keys.hasKey(office.keyLabel), 'no key generated on a refused approval');
  const approved = await registry.approve(office.id, bob);
  t.equal(approved.state, 'active');
  t.ok(await pki.keys.hasKey(office.keyLabel), 'key generated in the key store');
  t.ok(isYinxinError(await error(registry.approve(office.id, bob)), 'conflict'), 'approved once');
  await registry.approve(finance.id, bob);
  const bad = await error(registry.request({ organization: 'x', creditCode: '91350100M000100Y44', name: 'y', kind: 'official' }, alice));
  t.ok(isYinxinError(bad, 'validation-failed'), 'bad credit code check digit');
  const cert = pki.ca.get(approved.ca, approved.certificateSerial!)!;
  const text = run('openssl', ['x509', '-inform', 'DER', '-noout', '-text', '-nameopt', 'utf8'], cert.der).out;
  t.match(text, /Digital Signature, Non Repudiation/);
  t.match(text, /1\.3\.6\.1\.5\.5\.7\.3\.36/);
  t.match(text, /O ?= ?福州市人民政府办公厅/);
});

t.test('use: listed users, roles and clients only; audited and counted; verified', async (t) => {
  t.ok(isYinxinError(await error(registry.sealPdf(office.id, stranger, simplePdf())), 'forbidden'), 'a user not on the list');
  t.ok(isYinxinError(await error(registry.sealPdf(office.id, { ...client, clientId: 'app2' }, simplePdf())), 'forbidden'), 'another client');
  const one = await registry.sealPdf(office.id, clerk, simplePdf());
  const two = await registry.sealPdf(finance.id, { actor: 'operator:rao', username: 'rao', roles: ['ra-officer'] }, one.pdf);
  const usage = registry.usageOf(office.id);
  t.equal(usage.stats.uses, 1);
  t.equal(usage.recent[0].documentDigest, one.documentDigest);
  const audit = pki.audit.list({ action: 'seal.use' });
  t.equal(audit.length, 2);
  t.equal(audit[0].actor, 'operator:clerk');
  t.same(audit[0].details?.uses, [{ kind: 'pdf', documentDigest: one.documentDigest, hash: one.hash, time: usage.recent[0].time }], 'the use: which document, when');

  const report = await verifyPdf(two.pdf, verifyOptions);
  t.ok(report.valid, report.summary);
  t.equal(report.signatures.length, 2);
  t.equal(report.signatures[0].changesAfter, 'signatures-added');
  t.equal(report.signatures[1].changesAfter, 'none');
  t.same(report.signatures.map((s) => s.seal?.kind), ['official', 'finance']);
  t.ok(report.signatures.every((s) => s.timestamp.ok && s.chain.ok && s.revocation.status === 'good'));
  t.match(report.summary, /VALID B-T — 福州市人民政府办公厅 \/ 福州市人民政府办公厅公章 \(official\)/);

  const tampered = Buffer.from(two.pdf);
  tampered[10] ^= 1;
  const bad = await verifyPdf(tampered, verifyOptions);
  t.notOk(bad.valid);
  t.ok(bad.signatures.every((s) => !s.integrity.digestOk));

  // A content change appended after the seals: the seals' bytes still hash right, but the verifier says what happened.
  const text = Buffer.from(two.pdf).toString('latin1');
  const prev = /startxref\s+(\d+)\s+%%EOF\s*$/.exec(text)![1];
  const size = Number(/\/Size (\d+)/g.exec(text.slice(text.lastIndexOf('/Size')))![1]);
  const body = `\n4 0 obj\n<< /Length 44 >>\nstream\nBT /F1 24 Tf 72 720 Td (Forged text) Tj ET\nendstream\nendobj\n`;
  const xrefAt = two.pdf.length + Buffer.byteLength(body, 'latin1');
  const edited = Buffer.concat([Buffer.from(two.pdf), Buffer.from(`${body}xref\n4 1\n${String(two.pdf.length + 1).padStart(10, '0')} 00000 n\r\ntrailer\n<< /Size ${size} /Root 1 0 R /Prev ${prev} >>\nstartxref\n${xrefAt}\n%%EOF\n`, 'latin1')]);
  const changed = await verifyPdf(edited, verifyOptions);
  t.notOk(changed.valid, changed.summary);
  t.equal(changed.signatures[1].changesAfter, 'content-modified');
  t.ok(changed.signatures[1].integrity.digestOk, 'its own bytes are intact');

  // CAdES through the registry, verified.
  const file = await registry.sealFile(office.id, client, Buffer.from('contract text'));
  const v = await verifyDetached(Buffer.from('contract text'), file.p7s, verifyOptions);
  t.ok(v.valid, v.summary);
  t.ok(v.signatures[0].claimedTime, 'signing-time reported');
  t.notOk((await verifyDetached(Buffer.from('contract text!'), file.p7s, verifyOptions)).valid);
  t.equal(registry.usageOf(office.id).stats.file, 1);
});

t.test('suspended and revoked seals are refused; revocation at signing time reported', async (t) => {
  const sealed = await registry.sealPdf(office.id, clerk, simplePdf());
  await registry.suspend(office.id, bob);
  t.equal(registry.get(office.id).state, 'suspended');
  const e = await error(registry.sealPdf(office.id, clerk, simplePdf()));
  t.ok(isYinxinError(e, 'conflict') && (e as { details?: { state?: string } }).details?.state === 'suspended');
  await registry.resume(office.id, bob);
  t.equal(registry.get(office.id).state, 'active');
  const before = pki.audit.list({ action: 'seal.use' }).length;
  await registry.revoke(office.id, 1, bob);
  t.ok(isYinxinError(await error(registry.sealFile(office.id, clerk, Buffer.from('x'))), 'conflict'));
  t.equal(pki.audit.list({ action: 'seal.use' }).length, before, 'a refused use is not recorded as a use');
  const report = await verifyPdf(sealed.pdf, verifyOptions);
  // Seal and revocation may fall in the same second as the time-stamp: either way it is reported.
  t.match(report.signatures[0].revocation.status, /revoked-(after|before)-signing/);
});

t.test('an expired seal certificate is refused', async (t) => {
  const { FixedClock } = await import('../common/clock.ts');
  const late = new FixedClock(Date.now() + 4 * 365 * 86_400_000);
  const r2 = new SealRegistry({ store: pki.store, keys: pki.keys, audit: pki.audit, clock: late, ca: pki.ca, timeStamper: pki.timeStamper });
  t.equal(r2.get(finance.id).state, 'expired');
  const e = await error(r2.sealPdf(finance.id, { actor: 'operator:rao', username: 'rao', roles: ['ra-officer'] }, simplePdf()));
  t.ok(isYinxinError(e, 'conflict'));
});

t.test('a seal that fails after signing: its use is marked failed and audited, the counts say so', async (t) => {
  const rao: SealUser = { actor: 'operator:rao', username: 'rao', roles: ['ra-officer'] };
  const refusing = new SealRegistry({ store: pki.store, keys: pki.keys, audit: pki.audit, clock: pki.clock, ca: pki.ca,
    timeStamper: async () => new Uint8Array([0x30, 0x05, 0x30, 0x03, 0x02, 0x01, 0x02]) });
  const before = registry.usageOf(finance.id).stats;
  const uses = pki.audit.list({ action: 'seal.use' }).length;

  const e = await error(refusing.sealFile(finance.id, rao, Buffer.from('minutes')));
  t.ok(isYinxinError(e, 'time-not-available'), String(e));
  const after = registry.usageOf(finance.id);
  t.equal(after.stats.uses, before.uses, 'not counted as a use');
  t.equal(after.stats.failed, (before.failed ?? 0) + 1, 'counted as failed');
  t.equal(after.recent[0].failed, 'time-not-available', 'the row says why');
  const records = pki.audit.list({ action: 'seal.use' }).slice(uses);
  t.same(records.map((r) => r.outcome), ['success', 'failure'], 'the use, then its failure');
  t.equal(records[1].details?.error, 'time-not-available');
  t.same(records[1].details?.uses, records[0].details?.uses, 'the failure names the use it undoes');

  // Refused before anything is signed: nothing recorded.
  t.ok(isYinxinError(await error(refusing.sealPdf(finance.id, rao, new Uint8Array(Buffer.from('%PDF-1.7 not really')))), 'bad-request'));
  t.equal(pki.audit.list({ action: 'seal.use' }).length, uses + 2, 'a malformed PDF records no use');

  // Concurrent seals: every use counted once, under its own row.
  const sealed = await Promise.all(Array.from({ length: 12 }, (_, i) => registry.sealFile(finance.id, rao, Buffer.from(`file ${i}`))));
  const now = registry.usageOf(finance.id, 100);
  t.equal(now.stats.uses, before.uses + 12);
  t.equal(now.stats.file, before.file + 12);
  t.same(new Set(now.recent.filter((r) => !r.failed).slice(0, 12).map((r) => r.documentDigest)), new Set(sealed.map((s) => s.documentDigest)), 'one row per seal');
});
