/**
 * The template token writer (token.ts) against the asn1js object-tree writer it replaced
 * (testing/reference-token.ts): byte-identical TSTInfo, signed attributes and TimeStampResp for
 * every shape (each imprint algorithm, with and without NULL parameters, nonces from 1 to 300
 * octets so every DER length form is crossed, sub-second and whole-second genTimes, certReq,
 * policies, accuracy, TSA name), and openssl verifying tokens of each shape.
 */
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SoftwareKeyStore } from '../hsm/software.ts';
import type { Signer } from '../hsm/signer.ts';
import * as asn1js from 'asn1js';
import { DER_TAG, primitiveTlv } from './asn1.ts';
import { parseTimeStampResponse } from './client.ts';
import { TSA_HASHES } from './request.ts';
import { ReferenceTokenWriter } from './testing/reference-token.ts';
import { makeTestPki } from './testing/pki.ts';
import { TokenWriter, type Accuracy, type TokenFields } from './token.ts';
import { execFileSync } from 'node:child_process';

const keys = new SoftwareKeyStore();
const real = await keys.generateKeyPair('tsa', { type: 'ec', curve: 'P-256' });
const pki = makeTestPki(real.publicKeyInfo);
t.teardown(() => pki.cleanup());

// One real signature per distinct input, so both writers get the same bytes for the same input,
// and different bytes if they ever sign different inputs.
const signed = new Map<string, Uint8Array>();
const signedInputs: Uint8Array[] = [];
const memoSigner: Signer = {
  label: real.label, spec: real.spec, scheme: real.scheme, publicKeyInfo: real.publicKeyInfo,
  async sign(data) {
    signedInputs.push(data);
    const key = Buffer.from(data).toString('hex');
    let signature = signed.get(key);
    if (!signature) signed.set(key, (signature = await real.sign(data)));
    return signature;
  },
};

function writers(includeTsaName: boolean, accuracy: Accuracy | undefined) {
  const options = { signer: memoSigner, certificate: pki.tsa, includeTsaName, accuracy };
  return { fast: new TokenWriter(options), reference: new ReferenceTokenWriter(options) };
}

function nonceOf(length: number): Uint8Array | undefined {
  if (length === 0) return undefined;
  const n = randomBytes(length);
  // Minimal positive INTEGER octets: a leading 0x00 only before an octet with its top bit set.
  n[0] = length > 1 && length % 3 === 0 ? 0x00 : (n[0] & 0x7f) | 0x01;
  if (n[0] === 0) n[1] |= 0x80;
  return n;
}

t.test('byte-identical to the asn1js object-tree writer, every shape', async (t) => {
  let cases = 0;
  for (const [includeTsaName, accuracy] of [[true, { seconds: 1 }], [false, undefined], [true, { seconds: 2, millis: 5, micros: 999 }]] as const) {
    const { fast, reference } = writers(includeTsaName, accuracy);
    for (const hash of Object.values(TSA_HASHES)) {
      for (const hashParamsNull of [false, true]) {
        for (const nonceLength of [0, 1, 8, 9, 64, 120, 130, 300]) {
          for (const genTime of [new Date('2026-05-01T10:00:00Z'), new Date('2026-05-01T10:00:00.5Z'), new Date('2026-05-01T10:00:00.123Z'), new Date('2026-12-31T23:59:59.010Z')]) {
            for (const certReq of [true, false]) {
              const serial = randomBytes(17);
              serial[0] = 0x01;
              const f: TokenFields = {
                policy: nonceLength % 2 ? '1.2.3.4.1' : '1.2.156.112562.1.2.3.4.5.6.7', hash, hashParamsNull,
                hashedMessage: randomBytes(hash.length), serial, genTime, nonce: nonceOf(nonceLength), certReq,
              };
              t.equal(Buffer.compare(Buffer.from(fast.tstInfo(f)), Buffer.from(reference.tstInfo(f))), 0, 'TSTInfo');
              signedInputs.length = 0;
              const mine = await fast.response(f);
              const theirs = await reference.response(f);
              t.equal(signedInputs.length, 2);
              t.equal(Buffer.compare(Buffer.from(signedInputs[0]), Buffer.from(signedInputs[1])), 0, 'the same signed attributes');
              if (Buffer.compare(Buffer.from(mine), Buffer.from(theirs)) !== 0) {
                t.fail(`response differs: ${hash.name} null=${hashParamsNull} nonce=${nonceLength} ${genTime.toISOString()} certReq=${certReq}`);
              }
              cases++;
            }
          }
        }
      }
    }
  }
  t.ok(cases > 500, `${cases} shapes compared`);
});

t.test('a serial or imprint of an unexpected length still encodes correctly (new template, not a wrong one)', async (t) => {
  const { fast, reference } = writers(true, { seconds: 1 });
  const base: TokenFields = {
    policy: '1.2.3.4.1', hash: TSA_HASHES['SHA-256'], hashParamsNull: false, hashedMessage: randomBytes(32),
    serial: Uint8Array.of(0x01, 0x02), genTime: new Date('2026-01-01T00:00:00Z'), nonce: Uint8Array.of(5), certReq: false,
  };
  for (const serial of [Uint8Array.of(0x01), randomBytes(20).fill(0x11, 0, 1), Uint8Array.of(0x00, 0x80)]) {
    const f = { ...base, serial };
    t.equal(Buffer.compare(Buffer.from(await fast.response(f)), Buffer.from(await reference.response(f))), 0);
  }
});

t.test('openssl verifies tokens of every imprint algorithm, nonce length and precision', async (t) => {
  const { fast } = writers(true, { seconds: 1 });
  const dir = pki.dir;
  let n = 0;
  for (const hash of [TSA_HASHES['SHA-256'], TSA_HASHES['SHA-384'], TSA_HASHES['SHA-512']]) {
    for (const nonceLength of [0, 8, 130]) {
      for (const genTime of [new Date('2026-05-01T10:00:00Z'), new Date('2026-05-01T10:00:00.123Z')]) {
        const data = randomBytes(50);
        const f: TokenFields = {
          policy: '1.2.3.4.1', hash, hashParamsNull: true, hashedMessage: createHash(hash.node).update(data).digest(),
          serial: Uint8Array.of(0x01, ...randomBytes(16)), genTime, nonce: nonceOf(nonceLength), certReq: true,
        };
        const reply = await fast.response(f);
        t.equal(parseTimeStampResponse(reply).status, 0);
        writeFileSync(join(dir, 'tok.data'), data);
        writeFileSync(join(dir, 'tok.tsr'), reply);
        let out = '';
        try {
          out = execFileSync('openssl', ['ts', '-verify', '-data', join(dir, 'tok.data'), '-in', join(dir, 'tok.tsr'), '-CAfile', pki.files.root, '-untrusted', pki.files.issuing], { stdio: 'pipe' }).toString();
        } catch (e) {
          out = String((e as { stderr?: Buffer }).stderr ?? e);
        }
        t.match(out, /Verification: OK/, `${hash.name} nonce ${nonceLength} ${genTime.toISOString()}`);
        n++;
      }
    }
  }
  t.equal(n, 18);
});

t.test('primitiveTlv writes what asn1js writes, across every DER length form', async (t) => {
  for (const length of [0, 1, 0x7f, 0x80, 0xff, 0x100, 0x1234, 0xffff, 0x10000, 0x12345]) {
    const content = new Uint8Array(randomBytes(length));
    t.same(Buffer.from(primitiveTlv(DER_TAG.octetString, content)), Buffer.from(new asn1js.OctetString({ valueHex: content }).toBER(false)), `OCTET STRING of ${length}`);
  }
  for (const octets of [[0x01], [0x00, 0x80], [0x7f, 0xff, 0x01], [0x01, ...randomBytes(16)]]) {
    const content = new Uint8Array(octets);
    t.same(Buffer.from(primitiveTlv(DER_TAG.integer, content)), Buffer.from(new asn1js.Integer({ valueHex: content }).toBER(false)), `INTEGER ${Buffer.from(content).toString('hex')}`);
  }
});
