import { generateKeyPairSync, randomBytes, sign, verify } from 'node:crypto';
import * as asn1js from 'asn1js';
import t from 'tap';
import { ecdsaRawToDer } from './algorithms.ts';

/** The straightforward asn1js encoding the template path must reproduce byte for byte. */
function reference(raw: Uint8Array): Buffer {
  const half = raw.length / 2;
  const int = (b: Uint8Array) => {
    let i = 0;
    while (i < b.length - 1 && b[i] === 0 && !(b[i + 1] & 0x80)) i++;
    const v = b.subarray(i);
    return new asn1js.Integer({ valueHex: v[0] & 0x80 ? Buffer.concat([Buffer.from([0]), v]) : v });
  };
  return Buffer.from(new asn1js.Sequence({ value: [int(raw.subarray(0, half)), int(raw.subarray(half))] }).toBER(false));
}

t.test('ecdsaRawToDer equals a plain asn1js encoding for random r||s, leading zeros and high bits included', async (t) => {
  let mismatches = 0;
  for (let n = 0; n < 20000; n++) {
    const raw = new Uint8Array(randomBytes(n % 2 ? 64 : 96));
    if (n % 7 === 0) raw[0] = 0;
    if (n % 11 === 0) { raw[0] = 0; raw[1] = 0; raw[2] = 0x80; }
    if (n % 5 === 0) raw[raw.length / 2] = 0x80;
    if (n % 13 === 0) raw.fill(0, raw.length / 2, raw.length - 1);
    if (!reference(raw).equals(Buffer.from(ecdsaRawToDer(raw)))) mismatches++;
  }
  t.equal(mismatches, 0);
});

t.test('a P1363 signature from node:crypto, converted, verifies as DER', async (t) => {
  for (const namedCurve of ['P-256', 'P-384']) {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve });
    for (let i = 0; i < 50; i++) {
      const data = randomBytes(100);
      const raw = sign(namedCurve === 'P-256' ? 'sha256' : 'sha384', data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
      const der = ecdsaRawToDer(new Uint8Array(raw));
      t.ok(verify(namedCurve === 'P-256' ? 'sha256' : 'sha384', data, { key: publicKey, dsaEncoding: 'der' }, der), `${namedCurve} #${i}`);
    }
  }
});
