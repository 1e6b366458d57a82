/**
 * Bad input: every malformed or unacceptable query gets a TimeStampResp with status rejection and
 * the failInfo RFC 3161 s2.4.2 names, checked with openssl's reading of the reply; random
 * mutations of a valid query never crash the authority.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import * as asn1js from 'asn1js';
import { OID } from '../hsm/algorithms.ts';
import { YinxinError } from '../common/errors.ts';
import { buildTimeStampQuery, parseTimeStampResponse } from './client.ts';
import { parseTimeStampQueryFull, readCanonicalQuery, TSA_HASHES, type TsaHashName } from './request.ts';
import { makeFixture } from './testing/fixture.ts';

const fx = await makeFixture();
t.teardown(() => fx.cleanup());
const tsa = fx.make();

const der = (b: asn1js.BaseBlock) => new Uint8Array(b.toBER(false));
const imprint = (oid: string, length: number, withNull = true) => new asn1js.Sequence({
  value: [
    new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: oid }), ...(withNull ? [new asn1js.Null()] : [])] }),
    new asn1js.OctetString({ valueHex: new Uint8Array(length).fill(0xab) }),
  ],
});
const request = (fields: asn1js.BaseBlock[]) => der(new asn1js.Sequence({ value: fields }));
const v1 = () => new asn1js.Integer({ value: 1 });

function opensslFailInfo(reply: Uint8Array): string {
  const r = fx.run(['ts', '-reply', '-in', fx.file('bad.tsr', reply), '-text']);
  if (r.code !== 0) throw new Error(`openssl cannot read the reply: ${r.out}`);
  return r.out;
}

const valid = buildTimeStampQuery(Buffer.from('x'), { nonce: 12345n }).der;

const cases: Array<[string, Uint8Array, string, RegExp]> = [
  ['garbage', new Uint8Array(randomBytes(64)), 'badDataFormat', /wrong format/],
  ['empty body', new Uint8Array(0), 'badDataFormat', /wrong format/],
  ['truncated DER', valid.subarray(0, valid.length - 5), 'badDataFormat', /wrong format/],
  ['trailing bytes', new Uint8Array([...valid, 0x00, 0x00]), 'badDataFormat', /wrong format/],
  ['a bare INTEGER', der(new asn1js.Integer({ value: 5 })), 'badDataFormat', /wrong format/],
  ['version 2', request([new asn1js.Integer({ value: 2 }), imprint(OID.sha256, 32)]), 'badRequest', /illegal request|bad request|transaction not permitted/i],
  ['unknown hash OID', request([v1(), imprint('1.2.3.4.5.6', 32)]), 'badAlg', /unsupported algorithm/],
  ['MD5', request([v1(), imprint('1.2.840.113549.2.5', 16)]), 'badAlg', /unsupported algorithm/],
  ['SHA3-512 (not accepted by default)', request([v1(), imprint(OID.sha3_512, 64)]), 'badAlg', /unsupported algorithm/],
  ['hash parameters that are not NULL', request([v1(), new asn1js.Sequence({ value: [new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: OID.sha256 }), new asn1js.Integer({ value: 1 })] }), new asn1js.OctetString({ valueHex: new Uint8Array(32) })] })]), 'badAlg', /unsupported algorithm/],
  ['SHA-256 imprint of 31 octets', request([v1(), imprint(OID.sha256, 31)]), 'badDataFormat', /wrong format/],
  ['SHA-512 imprint of 32 octets', request([v1(), imprint(OID.sha512, 32, false)]), 'badDataFormat', /wrong format/],
  ['missing imprint', request([v1()]), 'badDataFormat', /wrong format/],
  ['unaccepted policy', request([v1(), imprint(OID.sha256, 32), new asn1js.ObjectIdentifier({ value: '1.3.6.1.4.1.99999.1' })]), 'unacceptedPolicy', /policy is not supported/],
  ['an extension', request([v1(), imprint(OID.sha256, 32), new asn1js.Constructed({
    idBlock: { tagClass: 3, tagNumber: 0 },
    value: [new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: '1.3.6.1.4.1.99999.7' }), new asn1js.OctetString({ valueHex: new Uint8Array([5, 0]) })] })],
  })]), 'unacceptedExtension', /extension is not supported/],
  ['fields out of order', request([v1(), imprint(OID.sha256, 32), new asn1js.Boolean({ value: true }), new asn1js.Integer({ value: 7 })]), 'badDataFormat', /wrong format/],
  ['a 100-octet nonce', request([v1(), imprint(OID.sha256, 32), new asn1js.Integer({ valueHex: new Uint8Array(100).fill(0x11) })]), 'badRequest', /./],
  ['oversize query', request([v1(), imprint(OID.sha256, 32), new asn1js.OctetString({ valueHex: new Uint8Array(20000) })]), 'badDataFormat', /wrong format/],
];

for (const [name, query, failInfo, opensslText] of cases) {
  t.test(`${name} -> rejection, ${failInfo}`, async (t) => {
    const reply = await tsa.respond(query);
    const parsed = parseTimeStampResponse(reply);
    t.equal(parsed.status, 2, 'rejection');
    t.same(parsed.failInfo, [failInfo]);
    t.equal(parsed.token, undefined);
    const shown = opensslFailInfo(reply);
    t.match(shown, /Status: Rejected\./);
    t.match(shown, opensslText);
  });
}

t.test('SHA-256 with absent parameters (RFC 5754) is accepted like openssl\'s NULL', async (t) => {
  const reply = await tsa.respond(request([v1(), imprint(OID.sha256, 32, false)]));
  t.equal(parseTimeStampResponse(reply).status, 0);
});

t.test('fuzz: 3000 mutated queries never throw and always get a TimeStampResp openssl can read', async (t) => {
  const before = tsa.stats();
  let granted = 0;
  for (let i = 0; i < 3000; i++) {
    const q = new Uint8Array(valid);
    const flips = 1 + (i % 4);
    for (let j = 0; j < flips; j++) q[Math.floor(Math.random() * q.length)] = Math.floor(Math.random() * 256);
    const cut = i % 7 === 0 ? q.subarray(0, Math.floor(Math.random() * q.length)) : q;
    const reply = await tsa.respond(cut);
    const parsed = parseTimeStampResponse(reply);
    if (parsed.status === 0) granted++;
    else if (parsed.failInfo.length !== 1 || parsed.failInfo[0] === 'systemFailure') t.fail(`unexpected refusal ${parsed.failInfo} for ${Buffer.from(cut).toString('hex')}`);
  }
  const after = tsa.stats();
  t.equal(after.issued - before.issued, granted, 'every grant was issued and recorded');
  t.pass(`${granted} mutations still valid and granted`);
  // A sample of refusals is readable by openssl.
  t.match(opensslFailInfo(await tsa.respond(new Uint8Array(randomBytes(40)))), /Status: Rejected/);
});

t.test('the canonical-DER fast path agrees with the full reader on every query it accepts', async (t) => {
  const accepted = new Set<TsaHashName>(['SHA-256', 'SHA-384', 'SHA-512', 'SHA3-256']);
  const full = (q: Uint8Array) => {
    try {
      return readQuery(q);
    } catch (e) {
      return e instanceof YinxinError ? `error ${e.code}` : `crash ${e}`;
    }
  };
  const readQuery = (q: Uint8Array) => parseTimeStampQueryFull(q, accepted);
  // Deterministic generator (xorshift) so a failure can be replayed.
  let seed = 0x9e3779b9;
  const rand = (n: number) => {
    seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  const hashes = Object.values(TSA_HASHES);
  const policies = ['1.2.3.4.1', '2.999.1', '1.3.6.1.4.1.99999.1.2.3', '0.9.2342.19200300.100.1.1', '2.25.123456789012345'];
  let fastTaken = 0;
  let compared = 0;
  for (let i = 0; i < 6000; i++) {
    const hash = hashes[rand(hashes.length)];
    const fields: asn1js.BaseBlock[] = [v1(), imprint(hash.oid, rand(5) === 0 ? hash.length - 1 : hash.length, rand(2) === 0)];
    if (rand(3) === 0) fields.push(new asn1js.ObjectIdentifier({ value: policies[rand(policies.length)] }));
    if (rand(3) !== 0) fields.push(new asn1js.Integer({ valueHex: new Uint8Array(randomBytes(1 + rand(rand(10) === 0 ? 80 : 16))) }));
    if (rand(2) === 0) fields.push(new asn1js.Boolean({ value: rand(2) === 0 }));
    let q = request(fields);
    // Half are mutated: bytes flipped, cut short, or a long-form length.
    const mutation = rand(6);
    if (mutation === 1) { q = new Uint8Array(q); q[rand(q.length)] = rand(256); }
    if (mutation === 2) q = q.subarray(0, rand(q.length));
    if (mutation === 3) { q = new Uint8Array(q); q[rand(q.length)] ^= 1 << rand(8); q[rand(q.length)] ^= 1 << rand(8); }
    const fast = readCanonicalQuery(q, accepted);
    const expected = full(q);
    if (fast !== undefined) {
      fastTaken++;
      t.same(fast, expected, `query ${Buffer.from(q).toString('hex')}`);
    } else if (typeof expected !== 'string' && mutation === 0) {
      t.fail(`the fast path refused a canonical valid query ${Buffer.from(q).toString('hex')}`);
    }
    compared++;
  }
  t.ok(fastTaken > 1000, `${fastTaken} of ${compared} queries took the fast path`);
  // BER the fast path leaves to the full reader: a long-form length where a short one fits.
  const canonical = request([v1(), imprint(OID.sha256, 32)]);
  const longForm = new Uint8Array([0x30, 0x81, canonical[1], ...canonical.subarray(2)]);
  t.equal(readCanonicalQuery(longForm, accepted), undefined);
  t.equal(readCanonicalQuery(canonical, accepted)?.hash.name, 'SHA-256');
});
