/**
 * PAdES B-T against tools we did not write: pdfsig (poppler) says "Signature is Valid." for each
 * seal of a document sealed twice and names the signers; qpdf --check finds it sound; the CMS cut
 * out of /Contents verifies with `openssl cms -verify` over the byte-range data, and its
 * signature-time-stamp with `openssl ts -verify`; one changed byte makes pdfsig and openssl refuse.
 * Bad input: encrypted, truncated and malformed PDFs, a bad placement, a TSA that is down.
 */
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import t from 'tap';
import { isYinxinError } from '../common/errors.ts';
import { toArrayBuffer } from '../common/pem.ts';
import { CMS_OID } from './cms.ts';
import { sealPdf, type PadesInput } from './pades.ts';
import { makeSealPki, run, signaturesByRegex } from './test-support.ts';
import { encryptedPdf, multiPagePdf, simplePdf, xrefStreamPdf } from './testing-pdfs.ts';

const pki = await makeSealPki();
t.teardown(() => pki.cleanup());
const office = await pki.credential('seal/office', '福州市人民政府办公厅', '福州市人民政府办公厅公章');
const finance = await pki.credential('seal/finance', '福州市财政局', '福州市财政局财务专用章');

function input(cred: typeof office, org: string, extra: Partial<PadesInput> = {}): PadesInput {
  return { ...cred, timeStamper: pki.timeStamper, clock: pki.clock, image: { kind: 'drawn', organization: org, sealName: '公章' }, ...extra };
}

function opensslVerify(name: string, sig: { cms: Uint8Array; signed: Uint8Array }) {
  return run('openssl', ['cms', '-verify', '-binary', '-inform', 'DER', '-in', pki.file(`${name}.p7s`, sig.cms),
    '-content', pki.file(`${name}.data`, sig.signed), '-CAfile', pki.rootFile, '-purpose', 'any', '-out', '/dev/null']);
}

const variants: Array<[string, () => Uint8Array]> = [
  ['classic xref table', () => simplePdf()],
  ['xref stream with object streams', () => xrefStreamPdf(pki.dir)],
  ['three pages (qpdf --pages)', () => multiPagePdf(pki.dir, 3)],
];

for (const [label, make] of variants) {
  t.test(`${label}: sealed twice, both seals valid for pdfsig, qpdf and openssl`, async (t) => {
    const original = make();
    const first = await sealPdf(original, input(office, '福州市人民政府办公厅', { placement: { page: 1 }, reason: 'approved' }));
    t.same(first.pdf.subarray(0, original.length), original, 'the original bytes are untouched');
    const second = await sealPdf(first.pdf, input(finance, '福州市财政局', { placement: { page: 1, x: 72, y: 72 } }));
    t.same(second.pdf.subarray(0, first.pdf.length), first.pdf, 'the first sealed revision is untouched');
    t.not(second.fieldName, first.fieldName);
    const path = pki.file(`${label}.pdf`, second.pdf);

    const sig = run('pdfsig', [path]);
    t.equal(sig.status, 0, sig.out);
    t.equal(sig.out.match(/Signature Validation: Signature is Valid\./g)?.length, 2, sig.out);
    t.match(sig.out, /Signer Certificate Common Name: 福州市人民政府办公厅公章/);
    t.match(sig.out, /Signer Certificate Common Name: 福州市财政局财务专用章/);
    t.match(sig.out, /Signature Type: ETSI\.CAdES\.detached/);
    const check = run('qpdf', ['--check', path]);
    t.equal(check.status, 0, check.out);
    t.match(check.out, /No syntax or stream encoding errors found/);

    const sigs = signaturesByRegex(second.pdf);
    t.equal(sigs.length, 2);
    t.equal(sigs[1].range[2] + sigs[1].range[3], second.pdf.length, 'the last seal covers the whole file');
    for (const [i, s] of sigs.entries()) {
      const v = opensslVerify(`${label}-${i}`, s);
      t.equal(v.status, 0, v.out);
      // The signature-time-stamp covers the signature value (RFC 3161 Appendix A).
      const sd = new pkijs.SignedData({ schema: pkijs.ContentInfo.fromBER(toArrayBuffer(s.cms)).content });
      const si = sd.signerInfos[0];
      t.notOk(si.signedAttrs!.attributes.some((a) => a.type === CMS_OID.signingTime), 'PAdES: no signing-time attribute');
      t.ok(si.signedAttrs!.attributes.some((a) => a.type === CMS_OID.signingCertificateV2), 'signing-certificate-v2');
      t.equal(sd.certificates?.length, 3, 'seal certificate and its chain included');
      const token = si.unsignedAttrs!.attributes.find((a) => a.type === CMS_OID.signatureTimeStampToken)!.values[0] as asn1js.BaseBlock;
      const ts = run('openssl', ['ts', '-verify', '-token_in', '-in', pki.file(`${label}-${i}.tst`, new Uint8Array(token.toBER(false))),
        '-data', pki.file(`${label}-${i}.sigvalue`, new Uint8Array(si.signature.valueBlock.valueHexView)), '-CAfile', pki.rootFile, '-untrusted', pki.chainFile]);
      t.equal(ts.status, 0, ts.out);
    }

    // One byte changed in the binary comment on line 2 (harmless to the structure): everyone refuses.
    const tampered = Buffer.from(second.pdf);
    t.equal(tampered[9], 0x25, 'line 2 is the binary comment');
    tampered[10] ^= 0x01;
    const tamperedPath = pki.file(`${label}-tampered.pdf`, tampered);
    const bad = run('pdfsig', [tamperedPath]);
    t.notMatch(bad.out, /Signature is Valid/, bad.out);
    for (const [i, s] of signaturesByRegex(tampered).entries()) t.not(opensslVerify(`${label}-bad-${i}`, s).status, 0, 'openssl refuses');
  });
}

t.test('a page and position of choice; bad placements are refused', async (t) => {
  const pdf = multiPagePdf(pki.dir, 2);
  const r = await sealPdf(pdf, input(office, '办公厅', { placement: { page: 2, x: 300, y: 500, size: 90 } }));
  t.match(Buffer.from(r.pdf).toString('latin1'), /\/Rect \[300 500 390 590\]/);
  for (const placement of [{ page: 3 }, { page: 0 }, { x: 590 }, { y: -1 }, { size: 5 }]) {
    const e = await sealPdf(pdf, input(office, '办公厅', { placement })).then(() => undefined, (x: unknown) => x);
    t.ok(isYinxinError(e, 'validation-failed'), JSON.stringify(placement));
  }
});

t.test('bad input: encrypted, truncated, malformed', async (t) => {
  const encrypted = encryptedPdf(pki.dir);
  const e1 = await sealPdf(encrypted, input(office, 'x')).then(() => undefined, (x: unknown) => x);
  t.ok(isYinxinError(e1, 'bad-request') && e1.details?.reason === 'pdf-encrypted', String(e1));
  const good = simplePdf();
  const cases: Array<[string, Uint8Array]> = [
    ['empty', new Uint8Array(0)],
    ['not a PDF', new Uint8Array(Buffer.from('hello world'))],
    ['truncated', good.subarray(0, good.length - 40)],
    ['truncated in the middle', good.subarray(0, 300)],
    ['startxref past the end', new Uint8Array(Buffer.from(Buffer.from(good).toString('latin1').replace(/startxref\n\d+/, 'startxref\n999999')))],
    ['xref points at the wrong object', new Uint8Array(Buffer.from(Buffer.from(good).toString('latin1').replace(/0000000015 00000 n/, '0000000016 00000 n')))],
    ['no root', new Uint8Array(Buffer.from(Buffer.from(good).toString('latin1').replace('/Root 1 0 R', '/Rxxt 1 0 R')))],
    ['garbage xref', new Uint8Array(Buffer.from(Buffer.from(good).toString('latin1').replace(/xref\n0 7/, 'xref\nA B')))],
  ];
  for (const [name, bytes] of cases) {
    const e = await sealPdf(bytes, input(office, 'x')).then(() => undefined, (x: unknown) => x);
    t.ok(isYinxinError(e, 'bad-request') && e.details?.reason === 'pdf-malformed', `${name}: ${(e as Error)?.message}`);
  }
});

t.test('a PDF already carrying another signature keeps it valid', async (t) => {
  // The foreign signature: made by our writer with an unrelated PKI, then sealed by this one.
  const other = await makeSealPki();
  t.teardown(() => other.cleanup());
  const foreign = await other.credential('x', '其他单位', '其他单位公章');
  const signed = await sealPdf(simplePdf(), { ...foreign, timeStamper: other.timeStamper, clock: other.clock, image: { kind: 'drawn', organization: '其他单位', sealName: '章' } });
  const r = await sealPdf(signed.pdf, input(office, '办公厅'));
  const out = run('pdfsig', [pki.file('foreign.pdf', r.pdf)]).out;
  t.equal(out.match(/Signature is Valid\./g)?.length, 2, out);
});

t.test('TSA down: sealing fails cleanly', async (t) => {
  const e = await sealPdf(simplePdf(), input(office, 'x', { timeStamper: async () => { throw new Error('ECONNREFUSED'); } })).then(() => undefined, (x: unknown) => x);
  t.ok(isYinxinError(e, 'time-not-available'));
});
