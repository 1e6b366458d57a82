/**
 * The attribute authority against tools we did not write: openssl (3.0, which cannot parse ACs)
 * verifies the AA certificate under the root, the signature over acinfo (offsets and signature
 * taken by `openssl asn1parse`), lists the fields with asn1parse, and verifies the ACRL; pkijs
 * parses the AttributeCertificateV2; the OCSP status of an AC is asked with a request built by
 * pkijs and the signed answer verified by `openssl ocsp`. RA workflow: separation of duties.
 */
import t from 'tap';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { toPem, toArrayBuffer } from '../common/pem.ts';
import { isYinxinError } from '../common/errors.ts';
import { certificateParts } from '../ocsp/response.ts';
import { loadOcspSigners } from '../ocsp/signers.ts';
import { makeOcspFixture, run, startResponder } from '../ocsp/testing.ts';
import { AttributeAuthority } from './attribute-authority.ts';
import { roleUri } from './attribute-certificate.ts';
import { TableAuditLog } from './test-support.ts';
import { systemClock } from '../common/clock.ts';

const fx = await makeOcspFixture();
t.teardown(() => fx.cleanup());
const audit = new TableAuditLog(fx.store, systemClock);
const aa = await AttributeAuthority.open({ store: fx.store, keys: fx.keys, audit, clock: systemClock, authority: fx.authority, baseUrl: 'http://127.0.0.1:8080' });
const aaRecord = await aa.initialize();
const aaFile = fx.file('aa.pem', toPem(aaRecord.certificate, 'CERTIFICATE'));
const alice = { actor: 'operator:alice' };
const bob = { actor: 'operator:bob' };

const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const holder = await fx.authority.issue({
  ca: 'issuing', profile: 'civil-servant-signing',
  subject: [{ type: 'C', value: 'CN' }, { type: 'O', value: '北京市人民政府' }, { type: 'CN', value: '张三' }, { type: 'serialNumber', value: '11010519491231002X' }],
  publicKeyInfo: new Uint8Array(publicKey.export({ type: 'spki', format: 'der' })),
}, alice);

function asn1parse(file: string, extra: string[] = []): string {
  const r = run('openssl', ['asn1parse', '-inform', 'DER', '-in', file, ...extra]);
  if (r.code !== 0) throw new Error(r.out);
  return r.out;
}

t.test('the AA certificate chains to the root and is not a CA', async (t) => {
  const v = run('openssl', ['verify', '-CAfile', fx.files.root, aaFile]);
  t.match(v.out, `${aaFile}: OK`);
  const text = run('openssl', ['x509', '-in', aaFile, '-noout', '-text']).out;
  t.match(text, /CA:FALSE/);
  t.match(text, /Digital Signature, CRL Sign/);
  t.equal(fx.authority.get('root', aaRecord.serial)?.profile, 'attribute-authority', 'listed among the root\'s certificates');
});

let issued: Awaited<ReturnType<AttributeAuthority['approve']>>['certificate'];

t.test('RA workflow: request, approval by another officer issues the AC', async (t) => {
  const request = await aa.submit({ holder: { ca: 'issuing', serial: holder.serial }, roles: ['处长', 'approver'], clearance: 'confidential', position: '副处长', department: '办公厅' }, alice);
  t.equal(request.status, 'pending');
  await t.rejects(aa.approve(request.id, alice), { code: 'separation-of-duties' });
  const { request: done, certificate } = await aa.approve(request.id, bob);
  t.equal(done.status, 'issued');
  t.equal(done.approvedBy, 'operator:bob');
  issued = certificate;
  t.same(aa.list({ holder: { ca: 'issuing', serial: holder.serial } }).map((c) => c.serial), [certificate.serial]);
  await t.rejects(aa.approve(request.id, { actor: 'operator:carol' }), { code: 'conflict' });
});

t.test('bad requests store nothing', async (t) => {
  const before = fx.store.totalEntries();
  const bad = [
    { holder: { ca: 'issuing', serial: 'zz' }, roles: ['x'] },
    { holder: { ca: 'issuing', serial: '0102' }, roles: ['x'] },
    { holder: { ca: 'issuing', serial: holder.serial }, roles: [] },
    { holder: { ca: 'issuing', serial: holder.serial }, roles: ['a', 'a'] },
    { holder: { ca: 'issuing', serial: holder.serial }, roles: ['bad\u0000role'] },
    { holder: { ca: 'issuing', serial: holder.serial }, roles: ['x'], clearance: 'cosmic' },
    { holder: { ca: 'issuing', serial: fx.signers.get('issuing') ? (await fx.issue('issuing', 'device-holder')).record.serial : '' }, roles: ['x'] },
  ];
  const afterDevice = fx.store.totalEntries();
  for (const input of bad) {
    try {
      await aa.submit(input as never, alice);
      t.fail(`accepted ${JSON.stringify(input)}`);
    } catch (e) {
      t.ok(isYinxinError(e), `refused ${JSON.stringify(input)}: ${(e as Error).message}`);
    }
  }
  t.ok(afterDevice > before);
  t.equal(fx.store.totalEntries(), afterDevice, 'nothing stored');
});

t.test('openssl: the signature over acinfo verifies with the AA key; the fields are there', async (t) => {
  const acFile = fx.file('ac.der', issued.der);
  const tree = asn1parse(acFile);
  const lines = tree.trim().split('\n');
  // 0: the AttributeCertificate; the next depth-1 SEQUENCE is acinfo; the last depth-1 item the BIT STRING.
  const acinfoLine = /^\s*(\d+):d=1\s+hl=(\d+)\s+l=\s*(\d+)\s+cons: SEQUENCE/.exec(lines[1])!;
  t.ok(acinfoLine, lines[1]);
  const [off, hl, len] = acinfoLine.slice(1).map(Number);
  const acinfo = issued.der.subarray(off, off + hl + len);
  const bitLine = lines.filter((l) => /d=1 .*BIT STRING/.test(l)).pop()!;
  const bitOffset = Number(/^\s*(\d+):/.exec(bitLine)![1]);
  const sigFile = fx.file('ac.sig', '');
  run('openssl', ['asn1parse', '-inform', 'DER', '-in', acFile, '-strparse', String(bitOffset), '-out', sigFile, '-noout']);
  const pub = fx.file('aa.pub', run('openssl', ['x509', '-in', aaFile, '-pubkey', '-noout']).stdout);
  const ok = run('openssl', ['dgst', '-sha256', '-verify', pub, '-signature', sigFile, fx.file('acinfo.der', acinfo)]);
  t.match(ok.out, 'Verified OK');
  const tampered = new Uint8Array(acinfo);
  tampered[tampered.length - 3] ^= 1;
  const bad = run('openssl', ['dgst', '-sha256', '-verify', pub, '-signature', sigFile, fx.file('acinfo-bad.der', tampered)]);
  t.match(bad.out, 'Verification failure');

  t.match(tree, /INTEGER\s+:01/, 'version v2');
  t.match(tree, /:role\b|2\.5\.4\.72/);
  t.match(tree, /clearance|2\.5\.4\.55/);
  t.match(tree, /:title/);
  t.match(tree, /1\.3\.6\.1\.5\.5\.7\.10\.4|id-aca-group/);
  t.match(tree, /GENERALIZEDTIME/);
  t.match(tree, /X509v3 Authority Key Identifier/);
  t.match(tree, /X509v3 CRL Distribution Points/);
  t.match(tree, /Authority Information Access/);
  t.notMatch(tree, /No Revocation Available|2\.5\.29\.56/);
  // run() reads openssl's output as latin1: the UTF-8 bytes of the Chinese values appear as such.
  const utf8 = (s: string) => Buffer.from(s, 'utf8').toString('latin1');
  t.ok(tree.includes(`UTF8STRING        :${utf8('副处长')}`), 'position');
  t.ok(tree.includes(`UTF8STRING        :${utf8('办公厅')}`), 'department');
  // asn1parse does not print a [6] uniformResourceIdentifier's text: look for the role URIs' bytes.
  t.match(tree, /cont \[ 6 \]/);
  t.ok(Buffer.from(issued.der).includes(Buffer.from(roleUri('处长'))) && Buffer.from(issued.der).includes(Buffer.from('urn:yinxin:role:approver')), 'role URIs');
});

t.test('pkijs parses it: holder bound to the signing certificate, issuer the AA', async (t) => {
  const ac = pkijs.AttributeCertificateV2.fromBER(toArrayBuffer(issued.der));
  const holderId = ac.acinfo.holder.baseCertificateID!;
  t.equal(Buffer.from(holderId.serialNumber.valueBlock.valueHexView).toString('hex'), holder.serial);
  const holderIssuer = holderId.issuer.names[0].value as pkijs.RelativeDistinguishedNames;
  t.equal(Buffer.from(holderIssuer.toSchema().toBER(false)).toString('hex'), Buffer.from(fx.authority.getAuthority('issuing').nameDer).toString('hex'));
  t.equal(ac.acinfo.attributes.length, 4);
  const roles = ac.acinfo.attributes.find((a) => a.type === '2.5.4.72')!;
  t.equal(roles.values.length, 2);
});

t.test('noRevAvail only when asked, and then no revocation pointers', async (t) => {
  const req = await aa.submit({ holder: { ca: 'issuing', serial: holder.serial }, roles: ['visitor'], noRevAvail: true, validityDays: 1 }, alice);
  const { certificate } = await aa.approve(req.id, bob);
  const tree = asn1parse(fx.file('ac-norev.der', certificate.der));
  t.match(tree, /No Revocation Available|2\.5\.29\.56/);
  t.notMatch(tree, /CRL Distribution Points/);
  t.notMatch(tree, /Authority Information Access/);
});

t.test('OCSP for attribute certificates: request built with pkijs, answer verified by openssl; revocation visible', async (t) => {
  const signers = await loadOcspSigners(fx.store, fx.keys);
  t.ok(signers.has('aa'));
  const server = await startResponder({ store: fx.store, signers });
  t.teardown(() => server.close());
  const { publicKeyBits } = certificateParts(aaRecord.certificate);
  const request = new pkijs.OCSPRequest({
    tbsRequest: new pkijs.TBSRequest({
      requestList: [new pkijs.Request({
        reqCert: new pkijs.CertID({
          hashAlgorithm: new pkijs.AlgorithmIdentifier({ algorithmId: '1.3.14.3.2.26', algorithmParams: new asn1js.Null() }),
          issuerNameHash: new asn1js.OctetString({ valueHex: createHash('sha1').update(aaRecord.nameDer).digest() }),
          issuerKeyHash: new asn1js.OctetString({ valueHex: createHash('sha1').update(publicKeyBits).digest() }),
          serialNumber: new asn1js.Integer({ valueHex: Buffer.from(issued.serial, 'hex') }),
        }),
      })],
    }),
  });
  const der = new Uint8Array(request.toSchema(true).toBER(false));
  const ask = async () => {
    const res = await fetch(server.url, { method: 'POST', headers: { 'content-type': 'application/ocsp-request' }, body: der });
    t.equal(res.status, 200);
    const file = fx.file('ac-resp.der', new Uint8Array(await res.arrayBuffer()));
    return run('openssl', ['ocsp', '-respin', file, '-CAfile', fx.files.root, '-resp_text']).out;
  };
  const good = await ask();
  t.match(good, 'Response verify OK');
  t.match(good, /Cert Status: good/);
  t.match(good, new RegExp(`Serial Number: ${issued.serial.toUpperCase()}`));

  await aa.revoke({ serial: issued.serial, reason: 9 }, bob);
  await new Promise((r) => setTimeout(r, 400));
  const revoked = await ask();
  t.match(revoked, 'Response verify OK');
  t.match(revoked, /Cert Status: revoked/);
  // openssl 3.0 has no name for privilegeWithdrawn (9) in OCSP text.
  t.match(revoked, /Revocation Reason: .*\(0x9\)/);
  await t.rejects(aa.revoke({ serial: issued.serial, reason: 9 }, bob), { code: 'already-revoked' });
});

t.test('the ACRL lists the revoked AC, is limited to attribute certificates, and verifies', async (t) => {
  const crl = aa.currentCrl()!;
  t.equal(crl.entries, 1);
  const file = fx.file('acrl.der', crl.der);
  const text = run('openssl', ['crl', '-inform', 'DER', '-in', file, '-noout', '-text']).out;
  t.match(text, /Only Attribute Certificates/);
  t.match(text, new RegExp(`Serial Number: ${issued.serial.toUpperCase()}`));
  t.match(text, /Privilege Withdrawn/);
  const chain = fx.file('aa-chain.pem', readFileSync(fx.files.root, 'utf8') + readFileSync(aaFile, 'utf8'));
  const v = run('openssl', ['crl', '-inform', 'DER', '-in', file, '-noout', '-CAfile', chain]);
  t.match(v.out, /verify OK/);
});
