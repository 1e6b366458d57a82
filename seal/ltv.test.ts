/**
 * PAdES B-LT: the DSS update after the B-T signature, checked with tools we did not write. qpdf
 * reads the DSS out of the sealed file (its JSON, not our parser); every OCSP response in it
 * verifies with `openssl ocsp -respin` and says "good" for the seal and TSA certificates; CRLs (when
 * OCSP cannot answer) verify with `openssl crl -verify`; the VRI key is the SHA-1 of the /Contents
 * cut out by a regular expression; pdfsig still says "Signature is Valid." for every seal and qpdf
 * --check finds the file sound. yinxin's verifier reports B-LT and the revocation status from the
 * DSS alone (no status lookup), and B-T for a seal without one.
 */
import { createHash } from 'node:crypto';
import t from 'tap';
import { isYinxinError } from '../common/errors.ts';
import { toPem } from '../common/pem.ts';
import { sealPdf, type PadesInput } from './pades.ts';
import { dssByQpdf, makeSealPki, run } from './test-support.ts';
import { simplePdf, xrefStreamPdf } from './testing-pdfs.ts';
import { verifyPdf } from './verify.ts';

const pki = await makeSealPki();
t.teardown(() => pki.cleanup());
const office = await pki.credential('seal/office', '福州市人民政府办公厅', '福州市人民政府办公厅公章');
const finance = await pki.credential('seal/finance', '福州市财政局', '福州市财政局财务专用章');
const issuingFile = pki.file('issuing.pem', toPem(pki.ca.caCertificate('issuing'), 'CERTIFICATE'));
const tsaCertificate = pki.tsaCertificate;

function input(cred: typeof office, extra: Partial<PadesInput> = {}): PadesInput {
  return { ...cred, timeStamper: pki.timeStamper, clock: pki.clock, image: { kind: 'drawn', organization: '办公厅', sealName: '公章' }, level: 'B-LT', validationData: pki.validationData, ...extra };
}

/** SHA-1 of every signature's /Contents (upper-case hex), cut out with a regular expression. */
function contentsHashes(pdf: Uint8Array): string[] {
  const text = Buffer.from(pdf).toString('latin1');
  return [...text.matchAll(/\/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]/g)].map((m) => {
    const hex = text.slice(Number(m[2]) + 1, Number(m[3]) - 1);
    return createHash('sha1').update(Buffer.from(hex, 'hex')).digest('hex').toUpperCase();
  });
}

function ocspText(name: string, response: Buffer, cert: Uint8Array): { status: number | null; out: string } {
  return run('openssl', ['ocsp', '-respin', pki.file(`${name}.ocsp`, response), '-CAfile', pki.rootFile, '-verify_other', pki.chainFile,
    '-issuer', issuingFile, '-cert', pki.file(`${name}.pem`, toPem(cert, 'CERTIFICATE')), '-no_nonce']);
}

t.test('B-LT on a classic and an xref-stream PDF, sealed twice', async (t) => {
  for (const [label, original] of [['classic', simplePdf()], ['xref stream', xrefStreamPdf(pki.dir)]] as const) {
    const first = await sealPdf(original, input(office, { placement: { page: 1 } }));
    t.equal(first.level, 'B-LT');
    const second = await sealPdf(first.pdf, input(finance, { placement: { page: 1, x: 72, y: 72 } }));
    t.same(second.pdf.subarray(0, first.pdf.length), first.pdf, 'the first seal and its DSS are untouched');
    const path = pki.file(`blt-${label}.pdf`, second.pdf);

    const sig = run('pdfsig', [path]);
    t.equal(sig.out.match(/Signature Validation: Signature is Valid\./g)?.length, 2, sig.out);
    const check = run('qpdf', ['--check', path]);
    t.equal(check.status, 0, check.out);
    t.match(check.out, /No syntax or stream encoding errors found/);

    const dss = dssByQpdf(path);
    t.same(dss.vri.sort(), contentsHashes(second.pdf).sort(), 'one VRI entry per seal, keyed by SHA-1 of /Contents');
    t.ok(dss.ocsps.length >= 4, `OCSP responses: ${dss.ocsps.length}`);
    t.equal(dss.crls.length, 0, 'no CRL where OCSP answers');
    for (const cert of [office.certificate, tsaCertificate]) {
      t.ok(dss.certs.some((c) => c.equals(Buffer.from(cert))), 'the certificate is in /Certs');
      const answers = dss.ocsps.map((r, i) => ocspText(`${label}-${i}`, r, cert));
      const forIt = answers.filter((a) => /: good/.test(a.out));
      t.ok(forIt.length >= 1, `an OCSP response says good: ${answers.map((a) => a.out).join('\n')}`);
      for (const a of forIt) t.match(a.out, /Response verify OK/);
    }

    const report = await verifyPdf(second.pdf, { trustAnchors: [pki.root] });
    t.equal(report.valid, true, report.summary);
    t.same(report.signatures.map((s) => s.level), ['B-LT', 'B-LT'], report.summary);
    t.same(report.signatures.map((s) => s.revocation), [{ status: 'good', source: 'dss-ocsp' }, { status: 'good', source: 'dss-ocsp' }]);
    t.same(report.signatures.map((s) => s.ltv?.vri), [true, true]);
    t.equal(report.signatures[1].changesAfter, 'validation-data-added', 'the DSS after the last seal is validation data only');
    t.equal(report.signatures[0].changesAfter, 'signatures-added');
    t.match(report.summary, /VALID B-LT/);
  }
});

t.test('CRLs where OCSP does not answer; nothing at all is a clean failure', async (t) => {
  const noOcsp = { ocsp: async () => { throw new Error('responder down'); }, crl: pki.validationData.crl };
  const r = await sealPdf(simplePdf(), input(office, { validationData: noOcsp }));
  const path = pki.file('blt-crl.pdf', r.pdf);
  t.match(run('pdfsig', [path]).out, /Signature is Valid\./);
  const dss = dssByQpdf(path);
  t.equal(dss.ocsps.length, 0);
  t.equal(dss.crls.length, 2, 'the issuing CA\'s CRL (seal and TSA certificates) and the root\'s (issuing CA)');
  for (const [i, crl] of dss.crls.entries()) {
    const v = run('openssl', ['crl', '-inform', 'DER', '-in', pki.file(`dss-${i}.crl`, crl), '-CAfile', pki.chainFile, '-noout', '-verify']);
    t.match(v.out, /verify OK/, v.out);
  }
  const report = await verifyPdf(r.pdf, { trustAnchors: [pki.root] });
  t.equal(report.signatures[0].level, 'B-LT', report.summary);
  t.same(report.signatures[0].revocation, { status: 'good', source: 'dss-crl' });

  const nothing = { ocsp: async () => { throw new Error('down'); }, crl: () => undefined };
  const e = await sealPdf(simplePdf(), input(office, { validationData: nothing })).then(() => undefined, (x: unknown) => x);
  t.ok(isYinxinError(e, 'validation-data-unavailable'), String(e));
  const e2 = await sealPdf(simplePdf(), input(office, { validationData: undefined })).then(() => undefined, (x: unknown) => x);
  t.ok(isYinxinError(e2, 'config-invalid'), 'B-LT without a source is a wiring error');
});

t.test('a B-T seal reports B-T; a DSS OCSP response for another certificate does not make it B-LT', async (t) => {
  const bt = await sealPdf(simplePdf(), input(office, { level: 'B-T' }));
  t.equal(bt.level, 'B-T');
  t.notMatch(Buffer.from(bt.pdf).toString('latin1'), /\/DSS/);
  const report = await verifyPdf(bt.pdf, { trustAnchors: [pki.root] });
  t.equal(report.signatures[0].level, 'B-T');
  t.same(report.signatures[0].revocation, { status: 'unknown' });
  // The finance seal's B-LT data in the DSS says nothing about the office seal, sealed B-T after it.
  const lt = await sealPdf(simplePdf(), input(finance));
  const mixed = await sealPdf(lt.pdf, input(office, { level: 'B-T' }));
  const r2 = await verifyPdf(mixed.pdf, { trustAnchors: [pki.root] });
  t.same(r2.signatures.map((s) => s.level), ['B-LT', 'B-T'], r2.summary);
  t.equal(r2.signatures[1].ltv?.vri, false);
});
