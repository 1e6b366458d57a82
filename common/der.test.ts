/**
 * The DER stepper against asn1js: the same tree of TLVs for real structures (a certificate, a
 * time-stamp reply), undefined rather than a throw for truncated or damaged input, and the DER
 * rules derWellFormed checks.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as asn1js from 'asn1js';
import t from 'tap';
import { derChild, derChildren, derContentEquals, derEquals, derTlv, derWellFormed, type Tlv } from './der.ts';
import { toArrayBuffer } from './pem.ts';

const dir = mkdtempSync(join(tmpdir(), 'yinxin-der-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const keyFile = join(dir, 'key.pem');
execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-subj', '/C=CN/O=福州市/CN=der test',
  '-addext', 'subjectAltName=DNS:a.example', '-days', '1', '-outform', 'DER', '-out', join(dir, 'cert.der')], { stdio: 'ignore' });
const cert = new Uint8Array(readFileSync(join(dir, 'cert.der')));

/** The tree as nested [tag, byte length] from asn1js and from the stepper. */
function asn1Tree(block: asn1js.BaseBlock): unknown {
  const bytes = block.valueBeforeDecodeView.length;
  const value = (block as asn1js.Constructed).valueBlock?.value;
  const tag = new Uint8Array(block.valueBeforeDecodeView)[0];
  return block.idBlock.isConstructed && Array.isArray(value) ? [tag, bytes, value.map(asn1Tree)] : [tag, bytes];
}
function stepTree(der: Uint8Array, tlv: Tlv): unknown {
  const bytes = tlv.end - tlv.start;
  return tlv.tag & 0x20 ? [tlv.tag, bytes, derChildren(der, tlv)!.map((c) => stepTree(der, c))] : [tlv.tag, bytes];
}

t.test('the same TLV tree as asn1js', async (t) => {
  const top = derTlv(cert, 0)!;
  t.equal(top.end, cert.length);
  t.same(stepTree(cert, top), asn1Tree(asn1js.fromBER(toArrayBuffer(cert)).result));
  t.ok(derWellFormed(cert, top));
  const [tbs] = derChildren(cert, top, 1)!;
  t.ok(derEquals(cert, tbs, cert.subarray(tbs.start, tbs.end)));
  const digest = new Uint8Array(createHash('sha256').update(cert).digest());
  t.notOk(derContentEquals(cert, tbs, digest));
});

t.test('derChild(n) is the n-th of derChildren, everywhere in a certificate', async (t) => {
  let checked = 0;
  const visit = (tlv: Tlv) => {
    if (!(tlv.tag & 0x20)) {
      t.equal(derChild(cert, tlv, 0), undefined, 'a primitive has no child');
      return;
    }
    const children = derChildren(cert, tlv)!;
    for (let i = 0; i <= children.length; i++) {
      t.same(derChild(cert, tlv, i), children[i]);
      checked++;
    }
    children.forEach(visit);
  };
  visit(derTlv(cert, 0)!);
  t.ok(checked > 40, `${checked} positions`);
  // A damaged child before the one asked for: undefined, as derChildren would be.
  const damaged = new Uint8Array([0x30, 0x06, 0x02, 0x05, 0x01, 0x02, 0x03, 0x04]);
  t.equal(derChild(damaged, derTlv(damaged, 0)!, 1), undefined);
});

t.test('truncations and damage give undefined or false, never a throw', async (t) => {
  let bad = 0;
  for (let cut = 0; cut < cert.length; cut++) {
    const top = derTlv(cert.subarray(0, cut), 0);
    if (top !== undefined) bad++;
  }
  t.equal(bad, 0, 'no truncation reads as a whole TLV');
  let threw = 0;
  for (let n = 0; n < 3000; n++) {
    const m = new Uint8Array(cert);
    m[Math.floor(Math.random() * m.length)] ^= 1 << (n % 8);
    try {
      const top = derTlv(m, 0);
      if (top && derWellFormed(m, top)) derChildren(m, top);
      if (top) derChild(m, top, n % 9);
    } catch {
      threw++;
    }
  }
  t.equal(threw, 0, '3,000 mutations: no throw');
  t.equal(derTlv(new Uint8Array([0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), 0), undefined, 'a length past the end');
  t.equal(derTlv(new Uint8Array([0x30, 0x80, 0x00, 0x00]), 0), undefined, 'indefinite length');
  t.equal(derTlv(new Uint8Array([0x1f, 0x81, 0x01, 0x00]), 0), undefined, 'multi-octet tag');
  t.equal(derChildren(new Uint8Array([0x04, 0x01, 0x00]), derTlv(new Uint8Array([0x04, 0x01, 0x00]), 0)!), undefined, 'a primitive has no children');
});

t.test('derWellFormed: the DER rules it checks', async (t) => {
  const ok = (bytes: number[]) => derWellFormed(new Uint8Array(bytes), derTlv(new Uint8Array(bytes), 0)!);
  t.ok(ok([0x30, 0x05, 0x06, 0x03, 0x2a, 0x03, 0x04]), 'SEQUENCE { OID 1.2.3.4 }');
  t.notOk(ok([0x30, 0x05, 0x06, 0x03, 0x2a, 0x03, 0x84]), 'an OID cut inside its last subidentifier');
  t.notOk(ok([0x30, 0x04, 0x06, 0x03, 0x2a, 0x03]), 'children that do not tile their parent');
  t.notOk(ok([0x30, 0x02, 0x00, 0x00]), 'end-of-contents');
  t.notOk(ok([0x24, 0x03, 0x04, 0x01, 0x00]), 'a constructed OCTET STRING');
  t.ok(ok([0xa0, 0x03, 0x02, 0x01, 0x01]), '[0] EXPLICIT INTEGER');
  t.notOk(ok([0x30, 0x03, 0x01, 0x01, 0x01]), 'a BOOLEAN neither 00 nor FF');
  t.notOk(ok([0x30, 0x02, 0x02, 0x00]), 'an empty INTEGER');
  t.notOk(ok([0x30, 0x03, 0x10, 0x01, 0x00]), 'a primitive SEQUENCE');
  t.notOk(ok([0x30, 0x03, 0x1e, 0x01, 0x41]), 'a BMPString of an odd length');
  const time = (tag: number, text: string) => ok([0x30, text.length + 2, tag, text.length, ...Buffer.from(text)]);
  t.ok(time(0x18, '20261121081300Z') && time(0x18, '20261121081300.25Z') && time(0x17, '261121081300Z'), 'DER times');
  t.notOk(time(0x18, '20261121081300.50Z') || time(0x18, '2026112108130Z') || time(0x17, '2611210813Z'), 'a trailing zero, a short time');
  t.notOk(time(0x18, '20261121081300.Z') || time(0x18, '20261121081300,5Z') || time(0x18, '202611210813005Z') || time(0x18, '2026112108130AZ'),
    'an empty fraction, a comma, a 15th digit, a letter');
  t.notOk(time(0x17, '261121081300+0800') || time(0x17, '2611210813000Z') || time(0x18, '20261121081300') || time(0x18, '20261121081300.5'),
    'an offset, a 13th digit, no Z');
  t.ok(time(0x18, '20261121081300.001Z'), 'leading zeros in the fraction are fine');
});
