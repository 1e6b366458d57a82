/**
 * PAdES B-LTA: after the B-LT DSS, a document time-stamp (/Type /DocTimeStamp, /SubFilter
 * /ETSI.RFC3161) in a further update and the TSA chain's validation data in the DSS under its own
 * VRI entry, checked with tools we did not write: `openssl ts -verify` accepts the token cut out of
 * /Contents over the byte ranges (the whole file before it, the seal's DSS included) and refuses it
 * after one changed byte; qpdf's JSON shows the time-stamp dictionary and the VRI entry, whose OCSP
 * responses `openssl ocsp -respin` verifies as good for the TSA certificate; qpdf --check finds the
 * file sound; pdfsig lists the seal and the time-stamp (poppler from 23.x validates ETSI.RFC3161 too;
 * Debian 12's 22.12 names the field and its TSA but says "Signature Type: unknown": then only the
 * seal's "Signature is Valid." is required). yinxin's verifier reports the time-stamp, B-LTA
 * for the seals it covers, and refuses a tampered file.
 */
import { createHash } from 'node:crypto';
import t from 'tap';
import { isYinxinError } from '../common/errors.ts';
import { toPem } from '../common/pem.ts';
import { addArchiveTimeStamp } from './archive.ts';
import type { TimeStamper } from './cms.ts';
import { sealPdf, type PadesInput } from './pades.ts';
import { dssByQpdf, makeSealPki, run, signaturesByRegex } from './test-support.ts';
import { simplePdf, xrefStreamPdf } from './testing-pdfs.ts';
import { verifyPdf } from './verify.ts';

const pki = await makeSealPki();
t.teardown(() => pki.cleanup());
const office = await pki.credential('seal/office', '福州市人民政府办公厅', '福州市人民政府办公厅公章');
const finance = await pki.credential('seal/finance', '福州市财政局', '福州市财政局财务专用章');
const issuingFile = pki.file('issuing.pem', toPem(pki.ca.caCertificate('issuing'), 'CERTIFICATE'));
const tsaFile = pki.file('tsa.pem', toPem(pki.tsaCertificate, 'CERTIFICATE'));

function input(cred: typeof office, extra: Partial<PadesInput> = {}): PadesInput {
  return { ...cred, timeStamper: pki.timeStamper, clock: pki.clock, image: { kind: 'drawn', organization: '办公厅', sealName: '公章' }, level: 'B-LTA', validationData: pki.validationData, ...extra };
}

/** `openssl ts -verify` of a document time-stamp token over the bytes its /ByteRange names. */
function tsVerify(name: string, s: { cms: Uint8Array; signed: Uint8Array }) {
  return run('openssl', ['ts', '-verify', '-token_in', '-in', pki.file(`${name}.tst`, s.cms), '-data', pki.file(`${name}.data`, s.signed),
    '-CAfile', pki.rootFile, '-untrusted', pki.chainFile]);
}

/** pdfsig's blocks, one per signature field. */
function pdfsigBlocks(out: string): string[] {
  return out.split(/^Signature #\d+:$/m).slice(1);
}

t.test('B-LTA on a classic and an xref-stream PDF: openssl ts, qpdf, pdfsig and the verifier accept it', async (t) => {
  for (const [label, original] of [['classic', simplePdf()], ['xref stream', xrefStreamPdf(pki.dir)]] as const) {
    const sealed = await sealPdf(original, input(office, { placement: { page: 1 } }));
    t.equal(sealed.level, 'B-LTA');
    const path = pki.file(`lta-${label}.pdf`, sealed.pdf);
    const text = Buffer.from(sealed.pdf).toString('latin1');
    t.match(text, /\/Type \/DocTimeStamp/);

    const [seal, stamp] = signaturesByRegex(sealed.pdf);
    t.ok(stamp, 'a second signature dictionary: the document time-stamp');
    const firstDss = text.indexOf('/DSS ');
    t.ok(firstDss > seal.range[2] && firstDss < stamp.range[1], 'the seal\'s DSS lies inside what the time-stamp covers');
    t.ok(stamp.range[2] + stamp.range[3] < sealed.pdf.length, 'the time-stamp\'s own validation data follows it');
    const verified = tsVerify(`lta-${label}`, stamp);
    t.equal(verified.status, 0, verified.out);
    t.match(verified.out, /Verification: OK/);

    const check = run('qpdf', ['--check', path]);
    t.equal(check.status, 0, check.out);
    t.match(check.out, /No syntax or stream encoding errors found/);
    const dss = dssByQpdf(path);
    const stampKey = createHash('sha1').update(stamp.contents).digest('hex').toUpperCase();
    const entry = dss.vriEntries[stampKey];
    t.ok(entry, 'a VRI entry keyed by the time-stamp\'s /Contents');
    t.ok(entry.certs.some((c) => c.equals(Buffer.from(pki.tsaCertificate))), 'with the TSA certificate');
    const answers = entry.ocsps.map((r, i) => run('openssl', ['ocsp', '-respin', pki.file(`lta-${label}-${i}.ocsp`, r), '-CAfile', pki.rootFile,
      '-verify_other', pki.chainFile, '-issuer', issuingFile, '-cert', tsaFile, '-no_nonce']));
    const good = answers.filter((a) => /: good/.test(a.out));
    t.equal(good.length, 1, answers.map((a) => a.out).join('\n'));
    t.match(good[0].out, /Response verify OK/);
    t.equal(new Set(dss.ocsps.map((o) => o.toString('base64'))).size, dss.ocsps.length, 'no response is stored twice in the DSS');

    const sig = run('pdfsig', [path]);
    const blocks = pdfsigBlocks(sig.out);
    t.equal(blocks.length, 2, sig.out);
    t.match(blocks[0], /Signature Field Name: Seal1[\s\S]*Signature Validation: Signature is Valid\./);
    t.match(blocks[1], /Signature Field Name: DocTimeStamp1[\s\S]*Signer Certificate Common Name: yinxin TSA/);
    if (/Signature Type: ETSI\.RFC3161/.test(sig.out)) t.match(blocks[1], /Signature is Valid\./, 'a poppler that knows document time-stamps validates it');
    else t.comment(`pdfsig ${run('pdfsig', ['-v']).out.split('\n')[0]} cannot validate ETSI.RFC3161; openssl ts -verify did`);

    const report = await verifyPdf(sealed.pdf, { trustAnchors: [pki.root] });
    t.equal(report.valid, true, report.summary);
    t.equal(report.signatures[0].level, 'B-LTA', report.summary);
    t.same(report.signatures[0].ltv?.archiveTimestamp?.field, 'DocTimeStamp1');
    t.equal(report.signatures[0].changesAfter, 'signatures-added');
    const [ts] = report.documentTimestamps!;
    t.equal(ts.valid, true, ts.errors.join('; '));
    t.same(ts.covers, ['Seal1']);
    t.same(ts.revocation, { status: 'good', source: 'dss-ocsp' });
    t.equal(ts.ltv?.vri, true);
    t.equal(ts.changesAfter, 'validation-data-added');
    t.match(ts.timestamp.tsa, /yinxin TSA/);
    t.match(report.summary, /Document time-stamp 1 \(DocTimeStamp1\): VALID .* covering Seal1, TSA certificate good \(dss-ocsp\)/);

    // One byte changed in the binary comment on line 2: openssl and the verifier refuse the time-stamp.
    const tampered = Buffer.from(sealed.pdf);
    tampered[10] ^= 0x01;
    t.not(tsVerify(`lta-${label}-bad`, signaturesByRegex(tampered)[1]).status, 0, 'openssl ts -verify refuses');
    const bad = await verifyPdf(tampered, { trustAnchors: [pki.root] });
    t.equal(bad.valid, false);
    t.equal(bad.documentTimestamps![0].valid, false);
    t.match(bad.documentTimestamps![0].errors.join(), /imprint/);
    t.not(bad.signatures[0].level, 'B-LTA');
  }
});

t.test('a second seal after a B-LTA one: every signature and time-stamp stays valid', async (t) => {
  const first = await sealPdf(simplePdf(), input(office));
  const second = await sealPdf(first.pdf, input(finance, { placement: { page: 1, x: 72, y: 72 } }));
  t.same(second.pdf.subarray(0, first.pdf.length), first.pdf, 'the first seal and time-stamp are untouched');
  const path = pki.file('lta-twice.pdf', second.pdf);
  const sig = run('pdfsig', [path]);
  t.equal(pdfsigBlocks(sig.out).length, 4, sig.out);
  t.equal(sig.out.match(/Signature Field Name: DocTimeStamp\d/g)?.length, 2);
  t.ok((sig.out.match(/Signature is Valid\./g)?.length ?? 0) >= 2, sig.out);
  t.equal(run('qpdf', ['--check', path]).status, 0);
  const all = signaturesByRegex(second.pdf);
  for (const i of [1, 3]) t.equal(tsVerify(`twice-${i}`, all[i]).status, 0, `time-stamp ${i}`);

  const report = await verifyPdf(second.pdf, { trustAnchors: [pki.root] });
  t.equal(report.valid, true, report.summary);
  t.same(report.signatures.map((s) => s.level), ['B-LTA', 'B-LTA']);
  t.same(report.documentTimestamps!.map((d) => [d.field, d.covers, d.changesAfter]),
    [['DocTimeStamp1', ['Seal1'], 'signatures-added'], ['DocTimeStamp2', ['Seal1', 'Seal2'], 'validation-data-added']]);

  // A B-LT seal is not B-LTA; a document time-stamp alone (no DSS for the seal under it) does not make it so.
  const lt = await sealPdf(simplePdf(), input(office, { level: 'B-LT' }));
  t.equal((await verifyPdf(lt.pdf, { trustAnchors: [pki.root] })).signatures[0].level, 'B-LT');
  const bt = await sealPdf(simplePdf(), input(office, { level: 'B-T' }));
  const stamped = await addArchiveTimeStamp(bt.pdf, { timeStamper: pki.timeStamper, validationData: pki.validationData, clock: pki.clock, certificates: office.chain });
  const r = await verifyPdf(stamped.pdf, { trustAnchors: [pki.root] });
  t.equal(r.documentTimestamps![0].valid, true, r.summary);
  t.equal(r.signatures[0].level, 'B-T', 'no validation data for the seal under the time-stamp');
});

t.test('bad cases: TSA down at the archive step, no validation data, no source: clean errors', async (t) => {
  let calls = 0;
  const onceOnly: TimeStamper = async (q) => {
    if (calls++ > 0) throw new Error('ECONNREFUSED');
    return pki.timeStamper(q);
  };
  const e1 = await sealPdf(simplePdf(), input(office, { timeStamper: onceOnly })).then(() => undefined, (x: unknown) => x);
  t.ok(isYinxinError(e1, 'time-not-available'), String(e1));
  t.match((e1 as Error).message, /document time-stamp/);

  // OCSP and CRLs answer for the seal (B-LT) but no longer for the archive step.
  let ocspCalls = 0;
  const fading = {
    ocsp: async (q: Uint8Array) => { if (ocspCalls++ >= 3) throw new Error('down'); return pki.validationData.ocsp(q); },
    crl: () => undefined,
  };
  const e2 = await sealPdf(simplePdf(), input(office, { validationData: fading })).then(() => undefined, (x: unknown) => x);
  t.ok(isYinxinError(e2, 'validation-data-unavailable'), String(e2));
  const e3 = await sealPdf(simplePdf(), input(office, { validationData: undefined })).then(() => undefined, (x: unknown) => x);
  t.ok(isYinxinError(e3, 'config-invalid'), String(e3));

  // A token too large for the space first reserved is stamped again with room for it.
  const small = await addArchiveTimeStamp(simplePdf(), { timeStamper: pki.timeStamper, validationData: pki.validationData, clock: pki.clock, certificates: office.chain, reserve: 64 });
  const [stamp] = signaturesByRegex(small.pdf);
  t.equal(tsVerify('small-reserve', stamp).status, 0);
});
