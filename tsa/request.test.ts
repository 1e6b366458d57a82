/**
 * Bad input: every malformed or unacceptable query gets a TimeStampResp with status rejection and
 * the failInfo RFC 3161 s2.4.2 names, checked with openssl's reading of the reply; random
 * mutations of a valid query never crash the authority.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import * as asn1js from 'asn1js';
import { OID } from '../hsm/algorithms.ts';
import { buildTimeStampQuery, parseTimeStampResponse } from './client.ts';
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
