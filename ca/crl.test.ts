import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { toPem } from '../common/pem.ts';
import { SoftwareKeyStore } from '../hsm/software.ts';
import type { KeySpec, Signer } from '../hsm/signer.ts';
import { crlEntryReasons, crlReasonName, encodeCrl, type CrlEntry, type CrlParameters } from './crl.ts';

const dir = mkdtempSync(join(tmpdir(), 'yinxin-crl-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const keys = new SoftwareKeyStore();

function run(cmd: string, args: string[]): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, { cwd: dir, encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}
const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });

interface TestCa { name: string; signer: Signer; certPem: string; issuerName: Uint8Array; authorityKeyId: Uint8Array }

/**
 * A CA certificate carrying the SoftwareKeyStore key's public half (openssl x509 -new -force_pubkey;
 * the certificate itself is signed by a throwaway key, which a trust anchor's verification ignores).
 */
async function makeCa(name: string, spec: KeySpec): Promise<TestCa> {
  const signer = await keys.generateKeyPair(name, spec);
  writeFileSync(join(dir, `${name}.pub`), toPem(signer.publicKeyInfo, 'PUBLIC KEY'));
  writeFileSync(join(dir, 'ca.ext'), 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=none\n');
  openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.throwaway.key`);
  openssl('x509', '-new', '-subj', `/C=CN/O=Yinxin Test/CN=${name} CA`, '-key', `${name}.throwaway.key`, '-force_pubkey', `${name}.pub`,
    '-days', '3650', '-extfile', 'ca.ext', '-out', `${name}.pem`);
  const cert = pkijs.Certificate.fromBER(openssl('x509', '-in', `${name}.pem`, '-outform', 'DER'));
  const ski = cert.extensions!.find((e) => e.extnID === '2.5.29.14')!;
  const authorityKeyId = (asn1js.fromBER(ski.extnValue.valueBlock.valueHexView).result as asn1js.OctetString).valueBlock.valueHexView;
  return { name, signer, certPem: `${name}.pem`, issuerName: new Uint8Array(cert.subject.toSchema().toBER()), authorityKeyId: new Uint8Array(authorityKeyId) };
}

/**
 * A leaf certificate issued by `ca` and really signed by its SoftwareKeyStore key: openssl issues
 * it from a stand-in CA with the same subject and the throwaway key, then we re-sign the TBS.
 */
async function issueLeaf(ca: TestCa, file: string, serialHex: string): Promise<void> {
  openssl('req', '-x509', '-new', '-key', `${ca.name}.throwaway.key`, '-subj', `/C=CN/O=Yinxin Test/CN=${ca.name} CA`, '-days', '30', '-out', `${ca.name}.standin.pem`);
  openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${file}.key`, '-subj', `/CN=${file}`, '-out', `${file}.csr`);
  writeFileSync(join(dir, 'leaf.ext'), 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nauthorityKeyIdentifier=none\n');
  openssl('x509', '-req', '-in', `${file}.csr`, '-CA', `${ca.name}.standin.pem`, '-CAkey', `${ca.name}.throwaway.key`, '-set_serial', `0x${serialHex}`,
    '-days', '30', '-sha256', '-extfile', 'leaf.ext', '-outform', 'DER', '-out', `${file}.der`);
  const cert = pkijs.Certificate.fromBER(readFileSync(join(dir, `${file}.der`)));
  const signature = await ca.signer.sign(cert.tbsView); // P-256 both: same ecdsa-with-SHA256 AlgorithmIdentifier
  cert.signatureValue = new asn1js.BitString({ valueHex: signature });
  writeFileSync(join(dir, `${file}.pem`), toPem(new Uint8Array(cert.toSchema().toBER()), 'CERTIFICATE'));
}

async function writeCrl(file: string, ca: TestCa, extra: Partial<CrlParameters> & { entries: Iterable<CrlEntry> }): Promise<Uint8Array> {
  const der = await encodeCrl({
    issuerName: ca.issuerName, authorityKeyId: ca.authorityKeyId, signer: ca.signer,
    thisUpdate: new Date(Date.now() - 3600_000), nextUpdate: new Date(Date.now() + 7 * 86400_000), crlNumber: 7n,
    ...extra,
  });
  writeFileSync(join(dir, file), der);
  openssl('crl', '-inform', 'DER', '-in', file, '-out', `${file}.pem`);
  return der;
}

/** openssl crl -text, cut into { serial -> entry text } and the header. */
function opensslCrlText(file: string): { header: string; entries: Map<string, string> } {
  const text = openssl('crl', '-inform', 'DER', '-in', file, '-noout', '-text').toString();
  const [header, list = ''] = text.split(/Revoked Certificates:/);
  const entries = new Map<string, string>();
  for (const block of list.split(/\n\s*Serial Number: /).slice(1)) {
    const [serial, ...rest] = block.split('\n');
    entries.set(serial.trim(), rest.join('\n'));
  }
  return { header, entries };
}

const cas = {
  p256: await makeCa('p256', { type: 'ec', curve: 'P-256' }),
  p384: await makeCa('p384', { type: 'ec', curve: 'P-384' }),
  rsa: await makeCa('rsa', { type: 'rsa', bits: 2048 }),
  ed25519: await makeCa('ed25519', { type: 'ed25519' }),
};

const sampleEntries: CrlEntry[] = [
  { serial: Buffer.from('0a1b2c3d4e5f60718293a4b5c6d7e8f9', 'hex'), revocationDate: new Date('2025-03-01T08:00:00Z'), reason: crlEntryReasons.keyCompromise, invalidityDate: new Date('2025-02-27T12:34:56Z') },
  { serial: Buffer.from('ff00000000000000000000000000000001', 'hex'), revocationDate: new Date('2025-03-02T09:30:15.999Z'), reason: crlEntryReasons.superseded },
  { serial: Buffer.from('0000007f', 'hex'), revocationDate: new Date('2025-03-03T00:00:00Z'), reason: crlEntryReasons.unspecified },
  { serial: Buffer.from('01', 'hex'), revocationDate: new Date('2025-03-04T00:00:00Z') },
  { serial: Buffer.from('7fffffffffffffffffffffffffffffffffffffff', 'hex'), revocationDate: new Date('2025-03-05T00:00:00Z'), reason: crlEntryReasons.cessationOfOperation },
  { serial: Buffer.from('1234', 'hex'), revocationDate: new Date('2025-03-06T00:00:00Z'), reason: crlEntryReasons.certificateHold },
  { serial: Buffer.from('5678', 'hex'), revocationDate: new Date('2025-03-07T00:00:00Z'), reason: crlEntryReasons.aACompromise },
];

t.test('full CRLs signed by P-256, P-384, RSA and Ed25519 keys verify with openssl and certtool', async (t) => {
  for (const ca of Object.values(cas)) {
    await writeCrl(`${ca.name}.crl`, ca, { entries: sampleEntries, issuingDistributionPoint: { uri: `http://crl.example.cn/${ca.name}.crl`, onlyContainsUserCerts: true } });
    const v = run('openssl', ['crl', '-inform', 'DER', '-in', `${ca.name}.crl`, '-CAfile', ca.certPem, '-verify', '-noout']);
    t.equal(v.status, 0, `${ca.name}: openssl exit status`);
    t.match(v.out, /verify OK/, `${ca.name}: openssl crl -verify`);
    const info = run('certtool', ['--crl-info', '--inder', '--infile', `${ca.name}.crl`]);
    t.equal(info.status, 0, `${ca.name}: certtool --crl-info parses it`);
    t.match(info.out, /Revoked certificates \(7\)/, `${ca.name}: certtool counts the entries`);
    const cv = run('certtool', ['--verify-crl', '--load-ca-certificate', ca.certPem, '--infile', `${ca.name}.crl.pem`]);
    t.match(cv.out, /Verified/i, `${ca.name}: certtool --verify-crl`);
    t.notMatch(cv.out, /Not verified|failure/i, `${ca.name}: certtool finds no failure`);
  }
  // The verification can fail: a CRL checked against another CA's key is refused.
  const wrong = run('openssl', ['crl', '-inform', 'DER', '-in', 'p256.crl', '-CAfile', cas.p384.certPem, '-verify', '-noout']);
  t.notMatch(wrong.out, /verify OK/);
});

t.test('openssl -text shows the right fields', async (t) => {
  const { header, entries } = opensslCrlText('p256.crl');
  t.match(header, /Version 2 \(0x1\)/);
  t.match(header, /Signature Algorithm: ecdsa-with-SHA256/);
  t.match(header, /Issuer: C = CN, O = Yinxin Test, CN = p256 CA/);
  t.match(header, /X509v3 CRL Number: \n\s+7\n/);
  t.match(header, new RegExp(`X509v3 Authority Key Identifier: \\n\\s+${Buffer.from(cas.p256.authorityKeyId).toString('hex').toUpperCase().match(/../g)!.join(':')}`));
  t.match(header, /X509v3 Issuing Distribution Point: critical\n\s+Full Name:\n\s+URI:http:\/\/crl\.example\.cn\/p256\.crl\s+Only User Certificates/);
  t.notMatch(header, /Delta CRL Indicator/);
  t.same([...entries.keys()], [
    '0A1B2C3D4E5F60718293A4B5C6D7E8F9', 'FF00000000000000000000000000000001', '7F', '01',
    '7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF', '1234', '5678',
  ], 'serials, minimal and positive (high bit set gets a 00 that openssl does not show)');
  const e = [...entries.values()];
  t.match(e[0], /Revocation Date: Mar  1 08:00:00 2025 GMT/);
  t.match(e[0], /CRL Reason Code: \n\s+Key Compromise/);
  t.match(e[0], /Invalidity Date: \n\s+Feb 27 12:34:56 2025 GMT/);
  t.match(e[1], /Revocation Date: Mar  2 09:30:15 2025 GMT/, 'fractional seconds dropped');
  t.match(e[1], /Superseded/);
  t.notMatch(e[2], /Reason|extensions/, 'unspecified: no reasonCode extension (s5.3.1)');
  t.notMatch(e[3], /Reason|extensions/);
  t.match(e[4], /Cessation Of Operation/);
  t.match(e[5], /Certificate Hold/);
  t.match(e[6], /AA Compromise/);
  // The serial whose high bit is set is encoded with a leading 00 (positive INTEGER).
  t.match(openssl('asn1parse', '-inform', 'DER', '-in', 'p256.crl').toString(), /INTEGER\s+:FF00000000000000000000000000000001/);
  t.ok(Buffer.from(readFileSync(join(dir, 'p256.crl'))).includes(Buffer.from('021200ff00', 'hex')));
});

t.test('delta CRL: critical Delta CRL Indicator, removeFromCRL, and openssl -use_deltas applies it', async (t) => {
  const ca = cas.p256;
  await issueLeaf(ca, 'leafA', '0AAA01');
  await issueLeaf(ca, 'leafB', '0BBB02');
  t.match(run('openssl', ['verify', '-CAfile', ca.certPem, 'leafA.pem']).out, /leafA.pem: OK/, 'the re-signed leaf verifies: the CA key is the SoftwareKeyStore key');

  await writeCrl('base.crl', ca, { crlNumber: 10n, freshestCrlUri: 'http://crl.example.cn/p256-delta.crl', entries: [{ serial: Buffer.from('0AAA01', 'hex'), revocationDate: new Date('2025-01-01T00:00:00Z'), reason: 1 }] });
  await writeCrl('delta.crl', ca, {
    crlNumber: 11n, baseCrlNumber: 10n,
    entries: [
      { serial: Buffer.from('0BBB02', 'hex'), revocationDate: new Date('2025-01-02T00:00:00Z'), reason: crlEntryReasons.keyCompromise },
      { serial: Buffer.from('0CCC03', 'hex'), revocationDate: new Date('2025-01-02T00:00:00Z'), reason: crlEntryReasons.removeFromCRL },
    ],
  });
  const v = run('openssl', ['crl', '-inform', 'DER', '-in', 'delta.crl', '-CAfile', ca.certPem, '-verify', '-noout']);
  t.match(v.out, /verify OK/);
  const { header, entries } = opensslCrlText('delta.crl');
  t.match(header, /X509v3 CRL Number: \n\s+11\n/);
  t.match(header, /X509v3 Delta CRL Indicator: critical\n\s+10\n/);
  t.match(entries.get('0CCC03') ?? '', /Remove From CRL/);
  t.match(opensslCrlText('base.crl').header, /X509v3 Freshest CRL: \n\s+Full Name:\n\s+URI:http:\/\/crl\.example\.cn\/p256-delta\.crl/);
  t.equal(run('certtool', ['--crl-info', '--inder', '--infile', 'delta.crl']).status, 0);

  const baseOnly = run('openssl', ['verify', '-crl_check', '-CAfile', ca.certPem, '-CRLfile', 'base.crl.pem', 'leafB.pem']);
  t.match(baseOnly.out, /leafB.pem: OK/, 'leafB is not on the base CRL');
  const withDelta = run('openssl', ['verify', '-crl_check', '-use_deltas', '-CAfile', ca.certPem, '-CRLfile', 'base.crl.pem', '-CRLfile', 'delta.crl.pem', 'leafB.pem']);
  t.match(withDelta.out, /certificate revoked/, 'the delta CRL revokes leafB');
  t.not(withDelta.status, 0);
});

t.test('a listed certificate is refused by openssl verify -crl_check, an unlisted one is not', async (t) => {
  const ca = cas.p256;
  await issueLeaf(ca, 'leafC', '00C0FFEE'); // leading zero octet in the caller's bytes is fine
  await issueLeaf(ca, 'leafD', '0D0D0D');
  await writeCrl('check.crl', ca, { entries: [{ serial: Buffer.from('00C0FFEE', 'hex'), revocationDate: new Date('2025-05-05T05:05:05Z'), reason: 1 }] });
  const revoked = run('openssl', ['verify', '-crl_check', '-CAfile', ca.certPem, '-CRLfile', 'check.crl.pem', 'leafC.pem']);
  t.match(revoked.out, /certificate revoked/);
  t.not(revoked.status, 0);
  const fine = run('openssl', ['verify', '-crl_check', '-CAfile', ca.certPem, '-CRLfile', 'check.crl.pem', 'leafD.pem']);
  t.match(fine.out, /leafD.pem: OK/);
  t.equal(fine.status, 0);
  const empty = await writeCrl('empty.crl', ca, { entries: [] });
  t.match(opensslCrlText('empty.crl').header, /No Revoked Certificates/, 's5.1.2.6: the list is absent when empty');
  t.ok(empty.length < 400);
  t.match(run('openssl', ['verify', '-crl_check', '-CAfile', ca.certPem, '-CRLfile', 'empty.crl.pem', 'leafC.pem']).out, /leafC.pem: OK/);
});

t.test('UTCTime through 2049, GeneralizedTime from 2050; invalidityDate always GeneralizedTime', async (t) => {
  await writeCrl('y2050.crl', cas.p256, {
    thisUpdate: new Date('2049-12-31T23:00:00Z'), nextUpdate: new Date('2050-01-01T00:00:00Z'),
    entries: [
      { serial: Buffer.from('01', 'hex'), revocationDate: new Date('2049-12-31T23:59:59Z'), invalidityDate: new Date('2049-06-01T00:00:00Z') },
      { serial: Buffer.from('02', 'hex'), revocationDate: new Date('2050-01-01T00:00:00Z') },
    ],
  });
  const parsed = openssl('asn1parse', '-inform', 'DER', '-in', 'y2050.crl').toString();
  const times = [...parsed.matchAll(/(UTCTIME|GENERALIZEDTIME)\s*:(\S+)/g)].map((m) => `${m[1]}:${m[2]}`);
  t.same(times, [
    'UTCTIME:491231230000Z', 'GENERALIZEDTIME:20500101000000Z',
    'UTCTIME:491231235959Z', 'GENERALIZEDTIME:20500101000000Z',
  ]);
  t.match(parsed, /OCTET STRING\s+\[HEX DUMP\]:180F32303439303630313030303030305A/, 'invalidityDate 2049 as GeneralizedTime');
  const v = run('openssl', ['crl', '-inform', 'DER', '-in', 'y2050.crl', '-CAfile', cas.p256.certPem, '-verify', '-noout']);
  t.match(v.out, /verify OK/);
});

t.test('every entry equals pkijs\' own encoding of it (random serials, dates 1900-2200, reasons)', async (t) => {
  const codes = Object.values(crlEntryReasons).filter((c) => c !== crlEntryReasons.removeFromCRL);
  const entries: CrlEntry[] = [];
  for (let i = 0; i < 2000; i++) {
    const date = new Date(Date.UTC(1900, 0, 1) + randomInt(0, 2 ** 47) % (300 * 365 * 86400_000));
    const entry: CrlEntry = { serial: randomBytes(randomInt(1, 21)), revocationDate: date };
    if (entry.serial.every((b) => b === 0)) entry.serial[0] = 1;
    if (i % 3) entry.reason = codes[randomInt(codes.length)];
    if (i % 4 === 0) entry.invalidityDate = new Date(date.getTime() - randomInt(0, 2 ** 40));
    entries.push(entry);
  }
  const der = await encodeCrl({
    issuerName: cas.p256.issuerName, authorityKeyId: cas.p256.authorityKeyId, signer: cas.p256.signer,
    thisUpdate: new Date('2025-01-01T00:00:00Z'), nextUpdate: new Date('2025-01-08T00:00:00Z'), crlNumber: 1n, entries,
  });
  writeFileSync(join(dir, 'random.crl'), der);
  // asn1js stops at 10,000 nodes by default: a 2,000-entry CRL has ~20,000.
  const decoded = asn1js.fromBER(der, { maxNodes: 100_000 });
  t.equal(decoded.offset, der.length, decoded.result.error);
  const tbs = (decoded.result as asn1js.Sequence).valueBlock.value[0] as asn1js.Sequence;
  const list = (tbs.valueBlock.value[5] as asn1js.Sequence).valueBlock.value;
  const crl = new pkijs.CertificateRevocationList({ schema: decoded.result });
  t.equal(crl.revokedCertificates?.length, 2000);
  let mismatches = 0;
  let timeTypeErrors = 0;
  crl.revokedCertificates!.forEach((rc, i) => {
    if (!Buffer.from(rc.toSchema().toBER()).equals(Buffer.from(list[i].valueBeforeDecodeView))) mismatches++;
    const year = Math.floor(entries[i].revocationDate.getUTCFullYear());
    const expectedType = year >= 1950 && year < 2050 ? 0 : 1;
    if (rc.revocationDate.type !== expectedType) timeTypeErrors++;
    if (Math.floor(entries[i].revocationDate.getTime() / 1000) * 1000 !== rc.revocationDate.value.getTime()) timeTypeErrors++;
  });
  t.equal(mismatches, 0, 'pkijs/asn1js re-encode every entry to the same bytes');
  t.equal(timeTypeErrors, 0, 'Time type and value right for every entry');
  t.match(run('openssl', ['crl', '-inform', 'DER', '-in', 'random.crl', '-CAfile', cas.p256.certPem, '-verify', '-noout']).out, /verify OK/);
});

t.test('bad parameters are refused with validation-failed', async (t) => {
  const ca = cas.p256;
  const base = {
    issuerName: ca.issuerName, authorityKeyId: ca.authorityKeyId, signer: ca.signer,
    thisUpdate: new Date('2025-01-01T00:00:00Z'), nextUpdate: new Date('2025-01-08T00:00:00Z'), crlNumber: 5n, entries: [] as CrlEntry[],
  };
  const entry = (e: Partial<CrlEntry>): CrlEntry[] => [{ serial: Buffer.from('01', 'hex'), revocationDate: new Date('2025-01-01T00:00:00Z'), ...e }];
  const cases: [string, Partial<CrlParameters>, RegExp][] = [
    ['nextUpdate before thisUpdate', { nextUpdate: new Date('2024-12-31T00:00:00Z') }, /nextUpdate must be later/],
    ['reason 7', { entries: entry({ reason: 7 }) }, /7 is not a CRLReason/],
    ['reason 11', { entries: entry({ reason: 11 }) }, /11 is not a CRLReason/],
    ['removeFromCRL in a full CRL', { entries: entry({ reason: 8 }) }, /removeFromCRL may only appear in a delta/],
    ['zero serial', { entries: entry({ serial: new Uint8Array([0, 0]) }) }, /serial number is zero/],
    ['empty serial', { entries: entry({ serial: new Uint8Array(0) }) }, /serial number is empty/],
    ['invalid date', { entries: entry({ revocationDate: new Date('nonsense') }) }, /not a valid date/],
    ['year 10000', { entries: entry({ invalidityDate: new Date('+010000-01-01T00:00:00Z') }) }, /years 1-9999/],
    ['base not before crlNumber', { baseCrlNumber: 5n }, /baseCrlNumber must be lower/],
    ['negative CRL number', { crlNumber: -1n }, /non-negative/],
    ['21-octet CRL number', { crlNumber: 1n << 160n }, /20 octets/],
    ['issuer not DER', { issuerName: new Uint8Array([0x30, 0x05, 0x00]) }, /issuerName is not a DER Name/],
    ['IDP user and attribute', { issuingDistributionPoint: { uri: 'http://x/y.crl', onlyContainsUserCerts: true, onlyContainsAttributeCerts: true } }, /both user and attribute/],
    ['IDP not a URI', { issuingDistributionPoint: { uri: 'not a uri' } }, /not an ASCII URI/],
    ['Freshest CRL in a delta', { crlNumber: 6n, baseCrlNumber: 5n, freshestCrlUri: 'http://x/d.crl' }, /delta CRL cannot carry a Freshest CRL/],
  ];
  for (const [what, change, message] of cases) {
    await t.rejects(encodeCrl({ ...base, ...change }), { code: 'validation-failed', message }, what);
  }
});

t.test('crlEntryReasons and crlReasonName follow RFC 5280 s5.3.1', async (t) => {
  t.same(crlEntryReasons, {
    unspecified: 0, keyCompromise: 1, cACompromise: 2, affiliationChanged: 3, superseded: 4,
    cessationOfOperation: 5, certificateHold: 6, removeFromCRL: 8, privilegeWithdrawn: 9, aACompromise: 10,
  });
  t.equal(crlReasonName(1), 'keyCompromise');
  t.equal(crlReasonName(7), undefined);
  t.equal(crlReasonName(42), undefined);
});

t.test('IDP for attribute certificates (the attribute authority\'s CRL)', async (t) => {
  await writeCrl('aa.crl', cas.p256, { entries: sampleEntries.slice(0, 1), issuingDistributionPoint: { uri: 'http://crl.example.cn/aa.crl', onlyContainsAttributeCerts: true } });
  t.match(opensslCrlText('aa.crl').header, /Issuing Distribution Point: critical\n\s+Full Name:\n\s+URI:http:\/\/crl\.example\.cn\/aa\.crl\s+Only Attribute Certificates/);
});
