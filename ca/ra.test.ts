/**
 * The RA workflow with CSRs made by `openssl req`, PKCS#12 files opened by `openssl pkcs12`, and
 * certificates checked by `openssl verify`. Bad requests are refused and store nothing.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { FixedClock } from '../common/clock.ts';
import { toPem } from '../common/pem.ts';
import { SoftwareKeyStore } from '../hsm/software.ts';
import { CertificateAuthority } from './authority.ts';
import { RegistrationAuthority } from './ra.ts';
import { MemoryStore, opensslPkcs12, TableAuditLog } from './test-support.ts';

const dir = mkdtempSync(join(tmpdir(), 'yinxin-ra-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

/** A CSR and its key from `openssl req`. keyArgs e.g. ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']. */
function opensslCsr(subj: string, keyArgs: string[] = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], extra: string[] = []): { csr: Uint8Array; keyFile: string } {
  const keyFile = join(dir, `k${n}.pem`);
  const csrFile = join(dir, `r${n++}.der`);
  execFileSync('openssl', ['req', '-new', '-utf8', '-nodes', ...keyArgs, '-keyout', keyFile, '-subj', subj, '-outform', 'DER', '-out', csrFile, ...extra], { stdio: 'pipe' });
  return { csr: new Uint8Array(readFileSync(csrFile)), keyFile };
}

function file(content: string | Uint8Array, ext = 'pem'): string {
  const p = join(dir, `f${n++}.${ext}`);
  writeFileSync(p, content);
  return p;
}

async function setup() {
  const clock = new FixedClock(Math.floor(Date.now() / 1000) * 1000);
  const store = new MemoryStore();
  const keys = new SoftwareKeyStore();
  const audit = new TableAuditLog(store, clock);
  const authority = await CertificateAuthority.open({ store, keys, audit, clock, options: { baseUrl: 'http://127.0.0.1:8080' } });
  await authority.initialize();
  const ra = await RegistrationAuthority.open({ store, keys, audit, authority, buildPkcs12: opensslPkcs12 });
  const verify = (der: Uint8Array) => spawnSync('openssl', ['verify', '-CAfile', file(toPem(authority.caCertificate('root'), 'CERTIFICATE')), '-untrusted', file(toPem(authority.caCertificate('issuing'), 'CERTIFICATE')), file(toPem(der, 'CERTIFICATE'))], { encoding: 'utf8' });
  return { store, keys, audit, authority, ra, verify, clock };
}

const CIVIL = '/C=CN/O=北京市人民政府/CN=张三/serialNumber=11010519491231002X';
const requester = { actor: 'operator:alice' };
const officer1 = { actor: 'operator:bob' };
const officer2 = { actor: 'operator:carol' };

t.test('CSR request -> approval by another officer -> certificate; the requester cannot approve', async (t) => {
  const { ra, verify, audit, authority } = await setup();
  const { csr } = opensslCsr(CIVIL, undefined, ['-addext', 'subjectAltName=email:zhangsan@bj.gov.cn']);
  const req = await ra.submit({ ca: 'issuing', profile: 'civil-servant-signing', csr }, requester);
  t.equal(req.status, 'pending');
  t.same(req.san, { email: ['zhangsan@bj.gov.cn'] }, 'SAN taken from the CSR extensionRequest');
  await t.rejects(ra.approve(req.id, requester), { code: 'separation-of-duties' });
  const done = await ra.approve(req.id, officer1);
  t.equal(done.request.status, 'issued');
  t.equal(done.certificates?.length, 1);
  const cert = done.certificates![0];
  t.equal(verify(cert.der).status, 0, 'openssl verify');
  t.equal(cert.identifier, '11010519491231002X');
  t.equal(cert.requestId, req.id);
  const subject = execFileSync('openssl', ['x509', '-in', file(toPem(cert.der, 'CERTIFICATE')), '-noout', '-subject', '-nameopt', 'utf8,sep_comma_plus_space'], { encoding: 'utf8' });
  t.match(subject, /O=北京市人民政府, CN=张三, serialNumber=11010519491231002X/);
  await t.rejects(ra.approve(req.id, officer2), { code: 'conflict' }, 'an issued request cannot be approved again');
  t.ok(authority.get('issuing', cert.serial));
  t.same(audit.list().map((r) => r.action).slice(-3), ['certificate.request.new', 'certificate.issue', 'certificate.approve'], 'request, issuance and approval audited');
  t.ok(audit.list().some((r) => r.action === 'certificate.issue' && r.actor === 'operator:bob'));
});

t.test('two-approver profile: duplicate approval refused, a second distinct officer issues', async (t) => {
  const { ra, verify } = await setup();
  const { csr } = opensslCsr('/C=CN/O=北京市人民政府/CN=北京市人民政府/organizationIdentifier=91350100M000100Y43');
  const req = await ra.submit({ ca: 'issuing', profile: 'organization', csr }, requester);
  const first = await ra.approve(req.id, officer1);
  t.equal(first.request.status, 'pending');
  t.equal(first.certificates, undefined);
  await t.rejects(ra.approve(req.id, officer1), { code: 'conflict', details: { reason: 'duplicate-approval' } });
  await t.rejects(ra.approve(req.id, requester), { code: 'separation-of-duties' });
  const second = await ra.approve(req.id, officer2);
  t.equal(second.request.status, 'issued');
  t.same(second.request.approvals.map((a) => a.officer), ['operator:bob', 'operator:carol']);
  t.equal(verify(second.certificates![0].der).status, 0);
});

t.test('rejection', async (t) => {
  const { ra } = await setup();
  const req = await ra.submit({ ca: 'issuing', profile: 'device', csr: opensslCsr('/CN=camera-1').csr }, requester);
  const r = await ra.reject(req.id, 'unknown device', officer1);
  t.equal(r.status, 'rejected');
  await t.rejects(ra.approve(req.id, officer2), { code: 'conflict' });
  await t.rejects(ra.reject(req.id, 'again', officer1), { code: 'conflict' });
  await t.rejects(ra.approve('req-nope', officer1), { code: 'not-found' });
});

t.test('bad requests are refused with a clear error and store nothing', async (t) => {
  const { ra, store } = await setup();
  const before = store.totalEntries();
  const good = opensslCsr(CIVIL).csr;
  const forged = new Uint8Array(good);
  forged[forged.length - 5] ^= 0x01; // inside the signature
  await t.rejects(ra.submit({ ca: 'issuing', profile: 'civil-servant-signing', csr: forged }, requester), { code: 'bad-signature' }, 'forged CSR signature');
  await t.rejects(ra.submit({ ca: 'issuing', profile: 'civil-servant-signing', csr: opensslCsr(CIVIL, ['-newkey', 'rsa:1024']).csr }, requester), { code: 'unsupported-algorithm' }, 'RSA-1024');
  await t.rejects(ra.submit({ ca: 'issuing', profile: 'civil-servant-signing', csr: opensslCsr(CIVIL, ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:secp256k1']).csr }, requester), { code: 'unsupported-algorithm' }, 'unknown curve');
  await t.rejects(ra.submit({ ca: 'issuing', profile: 'civil-servant-signing', csr: opensslCsr('/C=CN/O=北京市人民政府/CN=张三/serialNumber=110105194912310029').csr }, requester),
    { code: 'validation-failed', message: /18/, details: { position: 18, expected: 'X' } }, 'bad check character');
  await t.rejects(ra.submit({ ca: 'issuing', profile: 'civil-servant-signing', csr: opensslCsr(CIVIL + '/title=处长/street=长安街').csr }, requester), { code: 'policy-violation', message: /street/ }, 'forbidden subject field');
  await t.rejects(ra.submit({ ca: 'issuing', profile: 'civil-servant-signing', csr: new TextEncoder().encode('-----BEGIN CERTIFICATE REQUEST-----\nnot base64!\n-----END CERTIFICATE REQUEST-----\n') }, requester), { code: 'malformed-der' }, 'malformed PEM');
  await t.rejects(ra.submit({ ca: 'issuing', profile: 'civil-servant-signing', csr: good.subarray(0, good.length - 10) }, requester), { code: 'malformed-der' }, 'truncated DER');
  await t.rejects(ra.submit({ ca: 'issuing', profile: 'civil-servant-signing', csr: new Uint8Array(70 * 1024) }, requester), { code: 'payload-too-large' }, 'oversize body');
  await t.rejects(ra.submit({ ca: 'issuing', profile: 'organization', generateKey: { type: 'ec', curve: 'P-256' }, subject: [] }, requester), { code: 'policy-violation', message: /needs a CSR/ });
  await t.rejects(ra.submit({ ca: 'issuing', profile: 'civil-servant-encryption', csr: good }, requester), { code: 'policy-violation', message: /pair/ });
  await t.rejects(ra.submit({ ca: 'issuing', profile: 'ocsp-signer', csr: opensslCsr('/CN=x').csr }, requester), { code: 'policy-violation' });
  await t.rejects(ra.submit({ ca: 'issuing', profile: 'civil-servant-signing', csr: good, generateKey: { type: 'ec', curve: 'P-256' } }, requester), { code: 'bad-request' });
  await t.rejects(ra.submit({ ca: 'nope', profile: 'device', csr: good }, requester), { code: 'unknown-issuer' });
  t.equal(store.totalEntries(), before, 'nothing stored');
});

t.test('signing + encryption pair; encryption key generated here, archived, delivered once, recovered by two officers', async (t) => {
  const { ra, verify, keys, audit } = await setup();
  const signing = opensslCsr(CIVIL);
  const req = await ra.submit({ ca: 'issuing', profile: 'civil-servant-signing', csr: signing.csr, encryption: { generateKey: { type: 'rsa', bits: 2048 } } }, requester);
  const done = await ra.approve(req.id, officer1);
  const [sig, enc] = done.certificates!;
  t.equal(sig.profile, 'civil-servant-signing');
  t.equal(enc.profile, 'civil-servant-encryption');
  t.equal(sig.pairSerial, enc.serial);
  t.equal(enc.pairSerial, sig.serial);
  t.equal(verify(enc.der).status, 0);
  t.ok(done.oneTimePassword && done.oneTimePassword.length === 20, 'a one-time password is returned once');
  t.ok(ra.keyArchive.get(['issuing', enc.serial]), 'the encryption key is archived');
  t.notOk(ra.keyArchive.get(['issuing', sig.serial]), 'the signing key (the subject\'s own) is not');
  const archived = ra.keyArchive.get(['issuing', enc.serial])!;
  t.notOk(Buffer.from(archived.sealed).includes(Buffer.from('PRIVATE')), 'archived sealed, not as PEM');

  const p12 = await ra.collectPkcs12(req.id, 'encryption', requester);
  await t.rejects(ra.collectPkcs12(req.id, 'encryption', requester), { code: 'not-found', message: /only once/ }, 'delivered once');
  const p12File = file(p12, 'p12');
  const keyPem = execFileSync('openssl', ['pkcs12', '-in', p12File, '-nocerts', '-nodes', '-passin', `pass:${done.oneTimePassword}`], { encoding: 'utf8' });
  const certPem = execFileSync('openssl', ['pkcs12', '-in', p12File, '-clcerts', '-nokeys', '-passin', `pass:${done.oneTimePassword}`], { encoding: 'utf8' });
  const pubOfKey = createPublicKey(keyPem).export({ type: 'spki', format: 'der' });
  const pubOfCert = createPublicKey(certPem).export({ type: 'spki', format: 'der' });
  t.ok(pubOfKey.equals(pubOfCert), 'the PKCS#12 key belongs to the encryption certificate');
  t.not(spawnSync('openssl', ['pkcs12', '-in', p12File, '-nokeys', '-passin', 'pass:wrong']).status, 0, 'wrong password refused by openssl');

  // Key recovery: two distinct officers.
  await t.rejects(ra.requestKeyRecovery({ ca: 'issuing', serial: sig.serial, reason: 'x' }, officer1), { code: 'not-found' }, 'signing keys are not archived');
  const rec = await ra.requestKeyRecovery({ ca: 'issuing', serial: enc.serial, reason: 'lost token' }, officer1);
  await t.rejects(ra.approveKeyRecovery(rec.id, officer1), { code: 'separation-of-duties' });
  const recovered = await ra.approveKeyRecovery(rec.id, officer2);
  await t.rejects(ra.approveKeyRecovery(rec.id, officer2), { code: 'conflict' });
  const recFile = file(await ra.collectPkcs12(rec.id, 'recovery', officer2), 'p12');
  const recKey = execFileSync('openssl', ['pkcs12', '-in', recFile, '-nocerts', '-nodes', '-passin', `pass:${recovered.oneTimePassword}`], { encoding: 'utf8' });
  t.ok(createPublicKey(recKey).export({ type: 'spki', format: 'der' }).equals(pubOfCert), 'the recovered key is the archived one');
  const actions = audit.list().map((r) => r.action);
  for (const a of ['key.archive', 'key.pkcs12-delivered', 'key.recovery-request', 'key.recover']) t.ok(actions.includes(a), `audited ${a}`);
  t.ok(await keys.hasKey('ca/root'));
});

t.test('signing key generated on behalf (not archived) and delivered as PKCS#12', async (t) => {
  const { ra, verify } = await setup();
  const req = await ra.submit({ ca: 'issuing', profile: 'civil-servant-signing', generateKey: { type: 'ec', curve: 'P-256' }, subject: [{ type: 'C', value: 'CN' }, { type: 'O', value: '上海市人民政府' }, { type: 'CN', value: '李四' }, { type: 'serialNumber', value: '11010519491231002X' }] }, requester);
  const done = await ra.approve(req.id, officer1);
  t.equal(verify(done.certificates![0].der).status, 0);
  t.equal(ra.keyArchive.count(), 0, 'signing keys are never archived');
  const p12 = file(await ra.collectPkcs12(req.id, 'certificate', requester), 'p12');
  const info = execFileSync('openssl', ['pkcs12', '-in', p12, '-nokeys', '-passin', `pass:${done.oneTimePassword}`], { encoding: 'utf8' });
  t.match(info, /BEGIN CERTIFICATE/);
});

t.test('renew keeps the key; re-key takes a new one with the same subject', async (t) => {
  const { ra, verify, authority } = await setup();
  const first = opensslCsr('/CN=router-7/O=北京市人民政府');
  const req = await ra.submit({ ca: 'issuing', profile: 'device', csr: first.csr }, requester);
  const orig = (await ra.approve(req.id, officer1)).certificates![0];
  const renewal = await ra.renew({ ca: 'issuing', serial: orig.serial }, requester);
  t.equal(renewal.kind, 'renew');
  const renewed = (await ra.approve(renewal.id, officer1)).certificates![0];
  t.not(renewed.serial, orig.serial);
  t.equal(renewed.keyIdentifier, orig.keyIdentifier, 'same key');
  t.equal(verify(renewed.der).status, 0);

  await t.rejects(ra.rekey({ ca: 'issuing', serial: orig.serial, csr: first.csr }, requester), { code: 'policy-violation', message: /new key/ });
  await t.rejects(ra.rekey({ ca: 'issuing', serial: orig.serial, csr: opensslCsr('/CN=router-8/O=北京市人民政府').csr }, requester), { code: 'policy-violation', message: /subject differs/ });
  const rk = await ra.rekey({ ca: 'issuing', serial: orig.serial, csr: opensslCsr('/CN=router-7/O=北京市人民政府').csr }, requester);
  const rekeyed = (await ra.approve(rk.id, officer2)).certificates![0];
  t.not(rekeyed.keyIdentifier, orig.keyIdentifier, 'new key');
  t.equal(rekeyed.subject, orig.subject);

  await authority.revoke({ ca: 'issuing', serial: orig.serial, reason: 4 }, officer1);
  await t.rejects(ra.renew({ ca: 'issuing', serial: orig.serial }, requester), { code: 'already-revoked' });
  await t.rejects(ra.renew({ ca: 'issuing', serial: '0102030405060708' }, requester), { code: 'not-found' });
});

t.test('a request approved after its CA expired is refused with ca-expired', async (t) => {
  const { ra, authority, clock } = await setup();
  await authority.createIssuingCa({ name: 'short', subject: [{ type: 'CN', value: 'Short CA' }], spec: { type: 'ec', curve: 'P-256' }, validityDays: 10 }, 'root', officer1);
  const req = await ra.submit({ ca: 'short', profile: 'device', csr: opensslCsr('/CN=x').csr }, requester);
  clock.advance(11 * 86_400_000);
  await t.rejects(ra.approve(req.id, officer1), { code: 'ca-expired' });
  t.equal(ra.getRequest(req.id).status, 'pending', 'the request is unchanged');
  await t.rejects(ra.submit({ ca: 'short', profile: 'device', csr: opensslCsr('/CN=y').csr }, requester), { code: 'ca-expired' });
});
