/**
 * CAdES B-T against openssl: `openssl cms -verify` accepts the .p7s over the file (with the CA's
 * root as the only trust anchor), `openssl ts -verify` accepts its signature-time-stamp token over
 * the signature value, one changed byte makes openssl refuse, and a TSA that is down fails the seal.
 */
import { randomBytes } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import t from 'tap';
import { isYinxinError } from '../common/errors.ts';
import { toArrayBuffer } from '../common/pem.ts';
import { sealFileCades } from './cades.ts';
import { CMS_OID, sealCmsWriter, sealHash } from './cms.ts';
import { makeSealPki, run, sealSubject } from './test-support.ts';

const pki = await makeSealPki();
t.teardown(() => pki.cleanup());
const cred = await pki.credential('seal/finance', '福州市财政局', '福州市财政局财务专用章');

/** The signature value and the time-stamp token of the only SignerInfo. */
function signerParts(p7s: Uint8Array): { signature: Uint8Array; token: Uint8Array; attrTypes: string[] } {
  const info = pkijs.ContentInfo.fromBER(toArrayBuffer(p7s));
  const sd = new pkijs.SignedData({ schema: info.content });
  const si = sd.signerInfos[0];
  const tokenAttr = si.unsignedAttrs!.attributes.find((a) => a.type === CMS_OID.signatureTimeStampToken)!;
  return {
    signature: new Uint8Array(si.signature.valueBlock.valueHexView),
    token: new Uint8Array((tokenAttr.values[0] as asn1js.BaseBlock).toBER(false)),
    attrTypes: si.signedAttrs!.attributes.map((a) => a.type),
  };
}

for (const size of [0, 1024, 3 * 1024 * 1024]) {
  t.test(`a ${size}-byte file: openssl cms -verify and ts -verify accept the .p7s`, async (t) => {
    const content = randomBytes(size);
    const p7s = await sealFileCades(content, { ...cred, timeStamper: pki.timeStamper, clock: pki.clock });
    const dataFile = pki.file(`data-${size}.bin`, content);
    const sigFile = pki.file(`data-${size}.p7s`, p7s);
    const ok = run('openssl', ['cms', '-verify', '-binary', '-inform', 'DER', '-in', sigFile, '-content', dataFile, '-CAfile', pki.rootFile, '-purpose', 'any', '-out', '/dev/null']);
    t.equal(ok.status, 0, ok.out);
    t.match(ok.out, /Verification successful/);

    const parts = signerParts(p7s);
    t.ok(parts.attrTypes.includes(CMS_OID.signingTime), 'signing-time present');
    t.ok(parts.attrTypes.includes(CMS_OID.signingCertificateV2), 'signing-certificate-v2 present');
    const tokenFile = pki.file(`ts-${size}.der`, parts.token);
    const sigValueFile = pki.file(`sigvalue-${size}.bin`, parts.signature);
    const ts = run('openssl', ['ts', '-verify', '-token_in', '-in', tokenFile, '-data', sigValueFile, '-CAfile', pki.rootFile, '-untrusted', pki.chainFile]);
    t.equal(ts.status, 0, ts.out);
    t.match(ts.out, /Verification: OK/);
    // The token is over the signature value: over anything else it must fail.
    const other = run('openssl', ['ts', '-verify', '-token_in', '-in', tokenFile, '-data', dataFile, '-CAfile', pki.rootFile, '-untrusted', pki.chainFile]);
    t.not(other.status, 0);

    if (size > 0) {
      const tampered = Buffer.from(content);
      tampered[Math.floor(size / 2)] ^= 0x01;
      const bad = run('openssl', ['cms', '-verify', '-binary', '-inform', 'DER', '-in', sigFile, '-content', pki.file(`bad-${size}.bin`, tampered), '-CAfile', pki.rootFile, '-purpose', 'any', '-out', '/dev/null']);
      t.not(bad.status, 0, 'openssl refuses one changed byte');
      t.match(bad.out, /digest failure|Verification failure/);
    }
  });
}

t.test('the .p7s does not verify against an unrelated root', async (t) => {
  const other = await makeSealPki();
  t.teardown(() => other.cleanup());
  const p7s = await sealFileCades(Buffer.from('hello'), { ...cred, timeStamper: pki.timeStamper, clock: pki.clock });
  const r = run('openssl', ['cms', '-verify', '-binary', '-inform', 'DER', '-in', pki.file('h.p7s', p7s), '-content', pki.file('h.txt', 'hello'), '-CAfile', other.rootFile, '-purpose', 'any', '-out', '/dev/null']);
  t.not(r.status, 0);
});

t.test('a TSA that is down, refuses, or answers garbage fails the seal (never a silent B-B)', async (t) => {
  const cases: Array<[string, (q: Uint8Array) => Promise<Uint8Array>]> = [
    ['down', async () => { throw new Error('connect ECONNREFUSED 127.0.0.1:8080'); }],
    ['garbage', async () => new Uint8Array([0x30, 0x03, 0x02, 0x01])],
    ['rejection', async () => pki.tsa.respond(new Uint8Array([0x30, 0x00]))],
    ['answers another query', async () => pki.tsa.respond((await import('../tsa/client.ts')).buildTimeStampQuery(Buffer.from('x')).der)],
  ];
  for (const [name, stamper] of cases) {
    const error = await sealFileCades(Buffer.from('x'), { ...cred, timeStamper: stamper, clock: pki.clock }).then(() => undefined, (e: unknown) => e);
    t.ok(isYinxinError(error, 'time-not-available'), `${name}: ${(error as Error | undefined)?.message}`);
  }
});

t.test('a .p7s carries the certificate of the credential it was made with, however the credential is passed', async (t) => {
  const hash = sealHash(cred.signer);
  t.equal(sealCmsWriter(cred, hash), sealCmsWriter(cred, hash), 'the same arrays: the same prepared writer');
  t.equal(sealCmsWriter({ certificate: new Uint8Array(cred.certificate), chain: cred.chain.map((c) => new Uint8Array(c)) }, hash), sealCmsWriter(cred, hash),
    'copies of the same bytes: the same prepared writer');
  // A second certificate for the same key (a re-issue): each seal must name the one it was given.
  const reissued = await pki.ca.issue({ ca: 'issuing', profile: 'seal', subject: sealSubject('福州市财政局', '福州市财政局财务专用章'), publicKeyInfo: cred.signer.publicKeyInfo }, { actor: 'test' });
  for (const [name, certificate] of [['re-issued', reissued.der], ['original', cred.certificate], ['re-issued again', reissued.der]] as const) {
    const p7s = await sealFileCades(Buffer.from('x'), { ...cred, certificate, timeStamper: pki.timeStamper, clock: pki.clock });
    const signed = new pkijs.SignedData({ schema: pkijs.ContentInfo.fromBER(toArrayBuffer(p7s)).content });
    const first = signed.certificates![0] as pkijs.Certificate;
    t.same(new Uint8Array(first.toSchema().toBER(false)), new Uint8Array(certificate), `${name}: the signer's certificate in the .p7s`);
    const sid = signed.signerInfos[0].sid as pkijs.IssuerAndSerialNumber;
    t.equal(Buffer.from(sid.serialNumber.valueBlock.valueHexView).toString('hex'), Buffer.from(first.serialNumber.valueBlock.valueHexView).toString('hex'), `${name}: and its serial in the SignerInfo`);
  }
});
