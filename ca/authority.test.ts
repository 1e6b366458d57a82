/**
 * The CA core against tools we did not write: every profile's certificate and chain through
 * `openssl verify` (with -purpose) and `certtool --verify-chain`, extensions read back from
 * `openssl x509 -text`, Chinese names through openssl and certtool, revocation through
 * `openssl verify -crl_check` and `openssl crl -verify`, and bad input refused with nothing stored.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { FixedClock } from '../common/clock.ts';
import { isYinxinError } from '../common/errors.ts';
import { toPem } from '../common/pem.ts';
import { SoftwareKeyStore } from '../hsm/software.ts';
import { CertificateAuthority, type CertificateRecord } from './authority.ts';
import { CrlPublisher } from './crl-publisher.ts';
import { profiles, type ProfileName, type Subject, type SubjectAltNames } from './profiles.ts';
import { MemoryStore, TableAuditLog } from './test-support.ts';

const dir = mkdtempSync(join(tmpdir(), 'yinxin-ca-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const CITIZEN_ID = '11010519491231002X';
const CREDIT_CODE = '91350100M000100Y43';

function spki(kind: 'p256' | 'p384' | 'rsa2048' | 'rsa1024' | 'ed25519' | 'secp256k1'): Uint8Array {
  const pair = kind === 'p256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
    : kind === 'p384' ? generateKeyPairSync('ec', { namedCurve: 'P-384' })
    : kind === 'secp256k1' ? generateKeyPairSync('ec', { namedCurve: 'secp256k1' })
    : kind === 'ed25519' ? generateKeyPairSync('ed25519')
    : generateKeyPairSync('rsa', { modulusLength: kind === 'rsa1024' ? 1024 : 2048 });
  return new Uint8Array(pair.publicKey.export({ type: 'spki', format: 'der' }));
}

let fileNo = 0;
function file(der: Uint8Array | string, label = 'CERTIFICATE'): string {
  const p = join(dir, `f${fileNo++}.pem`);
  writeFileSync(p, typeof der === 'string' ? der : toPem(der, label));
  return p;
}

function run(cmd: string, args: string[]): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

// openssl checks validity against the real time, so the tests' clock starts at the real time.
async function setup(clock = new FixedClock(Math.floor(Date.now() / 1000) * 1000)) {
  const store = new MemoryStore();
  const keys = new SoftwareKeyStore();
  const audit = new TableAuditLog(store, clock);
  const ca = await CertificateAuthority.open({ store, keys, audit, clock, options: { baseUrl: 'http://127.0.0.1:8080' } });
  await ca.initialize();
  return { store, keys, audit, ca, clock };
}

const civilServant: Subject = [{ type: 'C', value: 'CN' }, { type: 'O', value: '北京市人民政府' }, { type: 'OU', value: '办公厅' }, { type: 'CN', value: '张三' }, { type: 'serialNumber', value: CITIZEN_ID }];
const organization: Subject = [{ type: 'C', value: 'CN' }, { type: 'O', value: '北京市人民政府' }, { type: 'CN', value: '北京市人民政府' }, { type: 'organizationIdentifier', value: CREDIT_CODE }];

/** For each profile: a subject, SANs, a key, the openssl -purpose to check, and what `x509 -text` must show. */
const cases: Record<ProfileName, { subject: Subject; san?: SubjectAltNames; key: 'p256' | 'rsa2048' | 'ed25519'; purpose?: string; expect: RegExp[]; absent?: RegExp[] }> = {
  'civil-servant-signing': { subject: civilServant, san: { email: ['zhangsan@bj.gov.cn'] }, key: 'p256', purpose: 'smimesign',
    expect: [/Key Usage: critical\s+Digital Signature, Non Repudiation\n/, /Extended Key Usage: \n\s+TLS Web Client Authentication, E-mail Protection, 1\.3\.6\.1\.5\.5\.7\.3\.36/, /email:zhangsan@bj\.gov\.cn/] },
  'civil-servant-encryption': { subject: civilServant, key: 'rsa2048', purpose: 'smimeencrypt',
    expect: [/Key Usage: critical\s+Key Encipherment\n/, /Extended Key Usage: \n\s+E-mail Protection\n/] },
  organization: { subject: organization, key: 'p256', purpose: 'sslclient',
    expect: [/Key Usage: critical\s+Digital Signature, Non Repudiation\n/, /TLS Web Client Authentication, 1\.3\.6\.1\.5\.5\.7\.3\.36/] },
  'server-tls': { subject: [{ type: 'C', value: 'CN' }, { type: 'O', value: '北京市人民政府' }, { type: 'CN', value: 'portal.bj.gov.cn' }], san: { dns: ['portal.bj.gov.cn', 'www.bj.gov.cn'], ip: ['10.0.0.1', '2001:db8::1'] }, key: 'rsa2048', purpose: 'sslserver',
    expect: [/Key Usage: critical\s+Digital Signature, Key Encipherment\n/, /TLS Web Server Authentication\n/, /DNS:portal\.bj\.gov\.cn, DNS:www\.bj\.gov\.cn, IP Address:10\.0\.0\.1, IP Address:2001:DB8:0:0:0:0:0:1/] },
  device: { subject: [{ type: 'O', value: '北京市人民政府' }, { type: 'CN', value: 'camera-0042' }, { type: 'serialNumber', value: 'SN-0042' }], key: 'p256', purpose: 'sslclient',
    expect: [/Key Usage: critical\s+Digital Signature, Key Agreement\n/, /TLS Web Client Authentication\n/] },
  seal: { subject: organization, key: 'p256',
    expect: [/Key Usage: critical\s+Digital Signature, Non Repudiation\n/, /Extended Key Usage: \n\s+1\.3\.6\.1\.5\.5\.7\.3\.36\n/] },
  'ocsp-signer': { subject: [{ type: 'CN', value: 'yinxin OCSP responder' }], key: 'p256', purpose: 'ocsphelper',
    expect: [/OCSP Signing\n/, /OCSP No Check:/, /Key Usage: critical\s+Digital Signature\n/] },
  tsa: { subject: [{ type: 'CN', value: 'yinxin TSA' }], key: 'p256', purpose: 'timestampsign',
    expect: [/Extended Key Usage: critical\n\s+Time Stamping\n/] },
  'appliance-tls': { subject: [{ type: 'CN', value: 'localhost' }], san: { dns: ['localhost.localdomain'], ip: ['127.0.0.1'] }, key: 'p256', purpose: 'sslserver',
    expect: [/Key Usage: critical\s+Digital Signature\n/, /TLS Web Server Authentication/] },
};

t.test('the hierarchy: a self-signed root and an issuing CA under it', async (t) => {
  const { ca } = await setup();
  const root = file(ca.caCertificate('root'));
  const issuing = file(ca.caCertificate('issuing'));
  t.equal(run('openssl', ['verify', '-CAfile', root, root]).status, 0);
  t.equal(run('openssl', ['verify', '-CAfile', root, issuing]).status, 0, 'issuing CA verifies under the root');
  const text = run('openssl', ['x509', '-in', issuing, '-noout', '-text']).out;
  t.match(text, /Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
  t.match(text, /Key Usage: critical\s+Digital Signature, Certificate Sign, CRL Sign/);
  t.match(text, /CA Issuers - URI:http:\/\/127\.0\.0\.1:8080\/ca\/root\.crt/);
  t.match(text, /URI:http:\/\/127\.0\.0\.1:8080\/crl\/root\.crl/);
  t.same(ca.caChain('issuing').length, 2);
  t.ok(ca.search({ ca: 'root' }).some((r) => r.profile === 'sub-ca'), 'the issuing CA certificate is in the root CA certificate table');
});

t.test('every profile: openssl verify (-purpose), certtool --verify-chain, and the extensions it must carry', async (t) => {
  const { ca } = await setup();
  const root = file(ca.caCertificate('root'));
  const issuing = file(ca.caCertificate('issuing'));
  for (const [name, c] of Object.entries(cases) as Array<[ProfileName, (typeof cases)[ProfileName]]>) {
    const r = await ca.issue({ ca: 'issuing', profile: name, subject: c.subject, san: c.san, publicKeyInfo: spki(c.key) }, { actor: 'test' });
    const leaf = file(r.der);
    const args = ['verify', '-CAfile', root, '-untrusted', issuing, ...(c.purpose ? ['-purpose', c.purpose] : []), leaf];
    const v = run('openssl', args);
    t.equal(v.status, 0, `${name}: openssl ${args.join(' ')}: ${v.out}`);
    const chain = file(toPem(r.der, 'CERTIFICATE') + toPem(ca.caCertificate('issuing'), 'CERTIFICATE') + toPem(ca.caCertificate('root'), 'CERTIFICATE'));
    const ct = run('certtool', ['--verify-chain', '--infile', chain]);
    t.equal(ct.status, 0, `${name}: certtool --verify-chain`);
    t.match(ct.out, /Chain verification output: Verified/, `${name}: certtool says Verified`);
    const text = run('openssl', ['x509', '-in', leaf, '-noout', '-text', '-nameopt', 'utf8']).out;
    for (const re of c.expect) t.match(text, re, `${name}: ${re}`);
    // Common to every end-entity certificate.
    t.match(text, /Version: 3 \(0x2\)/);
    t.match(text, /Basic Constraints: critical\s+CA:FALSE/, `${name}: CA:FALSE`);
    t.match(text, /Subject Key Identifier: \n\s+([0-9A-F]{2}:){19}[0-9A-F]{2}/, `${name}: SKI`);
    t.match(text, /Authority Key Identifier: \n\s+([0-9A-F]{2}:){19}[0-9A-F]{2}/, `${name}: AKI`);
    t.match(text, /OCSP - URI:http:\/\/127\.0\.0\.1:8080\/ocsp\n\s+CA Issuers - URI:http:\/\/127\.0\.0\.1:8080\/ca\/issuing\.crt/, `${name}: AIA`);
    t.match(text, /CRL Distribution Points: \n\s+Full Name:\n\s+URI:http:\/\/127\.0\.0\.1:8080\/crl\/issuing\.crl/, `${name}: CDP`);
    t.match(text, /Certificate Policies: \n\s+Policy: 2\.25\.238463219418230195361806478227375470041\.\d/, `${name}: policy`);
    if (name !== 'ocsp-signer') t.notMatch(text, /OCSP No Check/, `${name}: no ocsp-nocheck`);
    // No extension twice (RFC 5280 s4.2).
    const oids = run('openssl', ['asn1parse', '-in', leaf]).out.match(/OBJECT\s+:(X509v3 [^\n]+|Authority Information Access|[0-9.]+)\n/g) ?? [];
    const extNames = oids.filter((o) => /X509v3|Authority Information|1\.3\.6\.1\.5\.5\.7\.48\.1\.5/.test(o));
    t.equal(new Set(extNames).size, extNames.length, `${name}: no duplicate extensions`);
    // The subject AKI equals the issuer's SKI.
    const issuerText = run('openssl', ['x509', '-in', issuing, '-noout', '-ext', 'subjectKeyIdentifier']).out.split('\n')[1].trim();
    t.ok(text.includes(issuerText), `${name}: AKI is the issuing CA's SKI`);
  }
  t.equal(Object.keys(cases).length, Object.keys(profiles).length, 'every profile is covered');
});

t.test('a Chinese name round-trips through openssl and certtool as UTF8String; C and serialNumber are PrintableString', async (t) => {
  const { ca } = await setup();
  const r = await ca.issue({ ca: 'issuing', profile: 'civil-servant-signing', subject: civilServant, publicKeyInfo: spki('p256') }, { actor: 'test' });
  const leaf = file(r.der);
  const subject = run('openssl', ['x509', '-in', leaf, '-noout', '-subject', '-nameopt', 'utf8,sep_comma_plus_space']).out;
  t.match(subject, /C=CN, O=北京市人民政府, OU=办公厅, CN=张三, serialNumber=11010519491231002X/);
  const certtool = run('certtool', ['-i', '--infile', leaf]).out;
  t.ok(certtool.includes('张三') && certtool.includes('北京市人民政府'), 'certtool shows the Chinese names');
  const asn1 = run('openssl', ['asn1parse', '-in', leaf]).out;
  t.match(asn1, /countryName\n.*PRINTABLESTRING\s+:CN/);
  t.match(asn1, /organizationName\n.*UTF8STRING/);
  t.match(asn1, /commonName\n.*UTF8STRING/);
  t.match(asn1, /serialNumber\n.*PRINTABLESTRING\s+:11010519491231002X/);
});

t.test('serials: positive, at least 64 random bits, distinct', async (t) => {
  const { ca } = await setup();
  const seen = new Set<string>();
  for (let i = 0; i < 20; i++) {
    const r = await ca.issue({ ca: 'issuing', profile: 'device', subject: [{ type: 'CN', value: `d${i}` }], publicKeyInfo: spki('p256') }, { actor: 'test' });
    const out = run('openssl', ['x509', '-in', file(r.der), '-noout', '-serial']).out.trim();
    const hex = out.replace('serial=', '');
    t.ok(hex.length >= 16, `serial ${hex} has >= 64 bits`);
    t.ok(parseInt(hex.slice(0, 2), 16) < 0x80, 'positive (high bit clear, no leading zero needed)');
    t.equal(hex.toLowerCase(), r.serial);
    seen.add(hex);
  }
  t.equal(seen.size, 20);
});

t.test("validity is clipped to the issuer's and an expired CA issues nothing", async (t) => {
  const start = Math.floor(Date.now() / 1000) * 1000;
  const clock = new FixedClock(start);
  const { ca, store } = await setup(clock);
  const short = await ca.createIssuingCa({ name: 'device-ca', subject: [{ type: 'CN', value: '设备 CA' }], spec: { type: 'ec', curve: 'P-384' }, validityDays: 100 }, 'root', { actor: 'admin' });
  const r = await ca.issue({ ca: 'device-ca', profile: 'device', subject: [{ type: 'CN', value: 'router-1' }], publicKeyInfo: spki('p256') }, { actor: 'test' });
  t.equal(r.notAfter, short.notAfter, 'a 5-year device certificate stops when its 100-day CA does');
  const end = run('openssl', ['x509', '-in', file(r.der), '-noout', '-enddate']).out;
  t.equal(new Date(end.trim().replace('notAfter=', '')).getTime(), start + 100 * 86_400_000, 'openssl reads the clipped notAfter');
  t.equal(run('openssl', ['verify', '-CAfile', file(ca.caCertificate('root')), '-untrusted', file(ca.caCertificate('device-ca')), file(r.der)]).status, 0, 'P-256 leaf under a P-384 CA verifies');

  clock.set(start + 101 * 86_400_000);
  const before = store.totalEntries();
  await t.rejects(ca.issue({ ca: 'device-ca', profile: 'device', subject: [{ type: 'CN', value: 'router-2' }], publicKeyInfo: spki('p256') }, { actor: 'test' }), { code: 'ca-expired' });
  t.equal(store.totalEntries(), before, 'nothing stored');
});

t.test('bad input is refused with a clear error and nothing is stored', async (t) => {
  const { ca, store } = await setup();
  const before = store.totalEntries();
  const issue = (over: Partial<{ profile: string; subject: Subject; san: SubjectAltNames; publicKeyInfo: Uint8Array; ca: string }>) =>
    ca.issue({ ca: 'issuing', profile: 'civil-servant-signing', subject: civilServant, publicKeyInfo: spki('p256'), ...over }, { actor: 'test' });
  await t.rejects(issue({ publicKeyInfo: spki('rsa1024') }), { code: 'unsupported-algorithm', message: /RSA-1024/ }, 'RSA-1024');
  await t.rejects(issue({ publicKeyInfo: spki('secp256k1') }), { code: 'unsupported-algorithm', message: /curve 1\.3\.132\.0\.10/ }, 'unknown curve');
  await t.rejects(issue({ profile: 'civil-servant-encryption', publicKeyInfo: spki('ed25519') }), { code: 'unsupported-algorithm' }, 'Ed25519 cannot encrypt');
  await t.rejects(issue({ publicKeyInfo: new Uint8Array([0x30, 0x03, 0x02, 0x01]) }), { code: 'malformed-der' }, 'truncated SPKI');
  await t.rejects(issue({ subject: [...civilServant, { type: 'organizationIdentifier', value: CREDIT_CODE }] }), { code: 'policy-violation', message: /organizationIdentifier/ }, 'forbidden attribute');
  await t.rejects(issue({ subject: civilServant.filter((a) => a.type !== 'serialNumber') }), { code: 'policy-violation', message: /requires the subject attribute serialNumber/ });
  await t.rejects(issue({ subject: civilServant.map((a) => a.type === 'serialNumber' ? { ...a, value: '110105194912310029' } : a) }),
    { code: 'validation-failed', message: /serialNumber: .*18.*X/, details: { position: 18, expected: 'X', found: '9' } }, 'bad check character names the position');
  await t.rejects(issue({ profile: 'organization', subject: organization.map((a) => a.type === 'organizationIdentifier' ? { ...a, value: '91350100M000100Y44' } : a) }),
    { code: 'validation-failed', details: { position: 18 } }, 'bad social credit code');
  await t.rejects(issue({ subject: [{ type: 'C', value: '中国' }, ...civilServant.slice(1)] }), { code: 'policy-violation', message: /countryName/ });
  await t.rejects(issue({ san: { dns: ['evil.example'] } }), { code: 'policy-violation', message: /DNS/ }, 'DNS SAN on a civil servant');
  await t.rejects(issue({ profile: 'server-tls', subject: [{ type: 'CN', value: 'a.example' }], san: { dns: ['b.example'] } }), { code: 'policy-violation', message: /common name/ });
  await t.rejects(issue({ profile: 'server-tls', subject: [{ type: 'CN', value: '门户.cn' }], san: { dns: ['门户.cn'] } }), { code: 'policy-violation', message: /A-labels/ });
  await t.rejects(issue({ profile: 'no-such-profile' }), { code: 'not-found' });
  await t.rejects(issue({ ca: 'nope' }), { code: 'unknown-issuer' });
  await t.rejects(issue({ subject: civilServant.map((a) => a.type === 'CN' ? { ...a, value: '张'.repeat(65) } : a) }), { code: 'policy-violation', message: /longer than 64/ });
  t.equal(store.totalEntries(), before, 'nothing stored by any of them');
});

t.test('revoke, suspend, release; CRLs checked by openssl', async (t) => {
  const { ca, store, audit } = await setup();
  const crl = new CrlPublisher({ store, audit, clock: ca.clock, authority: ca, options: { debounceMs: 10 } });
  t.teardown(() => crl.stop());
  const issue = (cn: string): Promise<CertificateRecord> => ca.issue({ ca: 'issuing', profile: 'device', subject: [{ type: 'CN', value: cn }], publicKeyInfo: spki('p256') }, { actor: 'test' });
  const a = await issue('a');
  const b = await issue('b');
  const c = await issue('c');
  await crl.publish('issuing');
  const root = file(ca.caCertificate('root'));
  const issuing = file(ca.caCertificate('issuing'));
  const rootCrl = file((await crl.publish('root')).full.der, 'X509 CRL');
  const verifyWithCrl = (leaf: CertificateRecord) => {
    const crlFile = file(crl.current('issuing')!.der, 'X509 CRL');
    return run('openssl', ['verify', '-crl_check', '-CAfile', root, '-untrusted', issuing, '-CRLfile', crlFile, file(leaf.der)]);
  };
  t.equal(verifyWithCrl(a).status, 0, 'good before revocation');

  const before = store.totalEntries();
  await t.rejects(ca.revoke({ ca: 'issuing', serial: '7f00112233445566', reason: 1 }, { actor: 'officer' }), { code: 'not-found', message: /7f00112233445566/ }, 'unknown serial');
  await t.rejects(ca.revoke({ ca: 'issuing', serial: a.serial, reason: 7 }, { actor: 'officer' }), { code: 'validation-failed' }, 'reason 7 is unused');
  await t.rejects(ca.revoke({ ca: 'issuing', serial: 'zz', reason: 1 }, { actor: 'officer' }), { code: 'validation-failed' });
  t.equal(store.totalEntries(), before);

  const invalidity = new Date(ca.clock.now().getTime() - 3600_000);
  const revoked = await ca.revoke({ ca: 'issuing', serial: a.serial, reason: 1, invalidityDate: invalidity }, { actor: 'officer' });
  t.equal(revoked.status, 'revoked');
  await t.rejects(ca.revoke({ ca: 'issuing', serial: a.serial, reason: 1 }, { actor: 'officer' }), { code: 'already-revoked' }, 'already revoked');
  await ca.suspend({ ca: 'issuing', serial: b.serial }, { actor: 'officer' });
  await t.rejects(ca.suspend({ ca: 'issuing', serial: b.serial }, { actor: 'officer' }), { code: 'conflict' });
  await t.rejects(ca.release({ ca: 'issuing', serial: c.serial }, { actor: 'officer' }), { code: 'conflict' }, 'release of a good certificate');

  const { full, delta } = await crl.publish('issuing');
  t.equal(full.entries, 2);
  const fullText = run('openssl', ['crl', '-in', file(full.der, 'X509 CRL'), '-noout', '-text', '-CAfile', issuing, '-verify']);
  t.match(fullText.out, /verify OK/, 'openssl crl -verify accepts the full CRL');
  t.match(fullText.out, new RegExp(`Serial Number: ${a.serial.toUpperCase()}[\\s\\S]*?Key Compromise[\\s\\S]*?Invalidity Date`));
  t.match(fullText.out, /Certificate Hold/);
  t.match(fullText.out, /X509v3 CRL Number: \n\s+3/);
  const deltaText = run('openssl', ['crl', '-in', file(delta.der, 'X509 CRL'), '-noout', '-text', '-CAfile', issuing, '-verify']);
  t.match(deltaText.out, /verify OK/, 'openssl crl -verify accepts the delta CRL');
  t.match(deltaText.out, /Delta CRL Indicator: critical\n\s+1/);
  t.equal(delta.entries, 2);

  const rv = verifyWithCrl(a);
  t.not(rv.status, 0, 'the revoked certificate fails openssl verify -crl_check');
  t.match(rv.out, /certificate revoked/);
  t.not(verifyWithCrl(b).status, 0, 'the suspended one too');
  t.equal(verifyWithCrl(c).status, 0, 'the good one passes');
  t.ok(rootCrl);

  // Release: debounced republication, then b verifies again and the delta says removeFromCRL.
  await ca.release({ ca: 'issuing', serial: b.serial }, { actor: 'officer' });
  const numberBefore = crl.current('issuing')!.number;
  await new Promise((r) => setTimeout(r, 100));
  await crl.stop();
  t.not(crl.current('issuing')!.number, numberBefore, 'the release re-published the CRL (debounced)');
  t.equal(verifyWithCrl(b).status, 0, 'released certificate verifies again');
  const d2 = run('openssl', ['crl', '-in', file(crl.current('issuing', 'delta')!.der, 'X509 CRL'), '-noout', '-text']).out;
  t.match(d2, /Remove From CRL/);

  const actions = audit.list().map((r) => r.action);
  for (const a of ['certificate.revoke', 'certificate.suspend', 'certificate.release', 'crl.publish']) t.ok(actions.includes(a), `audited ${a}`);
});

t.test('search through the index tables and download forms', async (t) => {
  const { ca } = await setup();
  const r1 = await ca.issue({ ca: 'issuing', profile: 'civil-servant-signing', subject: civilServant, publicKeyInfo: spki('p256') }, { actor: 't' });
  const r2 = await ca.issue({ ca: 'issuing', profile: 'organization', subject: organization, publicKeyInfo: spki('p256') }, { actor: 't' });
  await ca.revoke({ ca: 'issuing', serial: r2.serial, reason: 5 }, { actor: 't' });
  t.same(ca.search({ identifier: CITIZEN_ID }).map((r) => r.serial), [r1.serial]);
  t.same(ca.search({ identifier: CREDIT_CODE }).map((r) => r.serial), [r2.serial]);
  t.same(ca.search({ subject: '张' }).map((r) => r.serial), [r1.serial]);
  t.same(ca.search({ organization: '北京市人民政府' }).map((r) => r.serial).sort(), [r1.serial, r2.serial].sort());
  t.same(ca.search({ status: 'revoked' }).map((r) => r.serial), [r2.serial]);
  t.same(ca.search({ status: 'good', ca: 'issuing' }).map((r) => r.serial), [r1.serial]);
  t.same(ca.search({ expiresBefore: new Date(ca.clock.now().getTime() + 800 * 86_400_000), ca: 'issuing' }).map((r) => r.serial), [r1.serial], 'the 2-year certificate expires first');
  t.equal(ca.search({ subject: 'nobody' }).length, 0);
  const pem = ca.download('issuing', r1.serial, 'pem').body as string;
  t.match(pem, /^-----BEGIN CERTIFICATE-----/);
  const chain = ca.download('issuing', r1.serial, 'chain').body as string;
  t.equal(chain.match(/BEGIN CERTIFICATE/g)?.length, 3);
  const chainFile = file(chain);
  t.equal(run('certtool', ['--verify-chain', '--infile', chainFile]).status, 0, 'the downloaded chain verifies with certtool');
  t.same(ca.download('issuing', r1.serial, 'der').body, r1.der);
  t.throws(() => ca.download('issuing', '0102030405060708', 'der'), { code: 'not-found' });
});

t.test('the hierarchy survives a restart: CAs are loaded from the store with their signers', async (t) => {
  const { ca, store, keys, audit, clock } = await setup();
  const again = await CertificateAuthority.open({ store, keys, audit, clock, options: { baseUrl: 'http://127.0.0.1:8080' } });
  t.same(again.listAuthorities().map((a) => a.name).sort(), ['issuing', 'root']);
  await again.initialize();
  t.same(Buffer.from(again.caCertificate('root')), Buffer.from(ca.caCertificate('root')), 'initialize() is idempotent');
  await t.rejects(again.createIssuingCa({ name: 'issuing', subject: [{ type: 'CN', value: 'x' }], spec: { type: 'ec', curve: 'P-256' }, validityDays: 10 }, 'root', { actor: 'a' }), { code: 'conflict' });
  await t.rejects(again.createIssuingCa({ name: 'Bad Name', subject: [{ type: 'CN', value: 'x' }], spec: { type: 'ec', curve: 'P-256' }, validityDays: 10 }, 'root', { actor: 'a' }), { code: 'validation-failed' });
  const rsaCa = await again.createIssuingCa({ name: 'rsa-ca', subject: [{ type: 'CN', value: 'RSA CA' }], spec: { type: 'rsa', bits: 2048 }, validityDays: 365 }, 'root', { actor: 'a' });
  const r = await again.issue({ ca: 'rsa-ca', profile: 'device', subject: [{ type: 'CN', value: 'x' }], publicKeyInfo: spki('p256') }, { actor: 't' });
  t.equal(run('openssl', ['verify', '-CAfile', file(again.caCertificate('root')), '-untrusted', file(rsaCa.certificate), file(r.der)]).status, 0, 'RSA issuing CA works');
  t.ok(isYinxinError(await again.issue({ ca: 'rsa-ca', profile: 'device', subject: [], publicKeyInfo: spki('p256') }, { actor: 't' }).catch((e) => e), 'policy-violation'));
  void execFileSync;
});
