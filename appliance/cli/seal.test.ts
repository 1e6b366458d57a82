/**
 * The `yinxin seal` commands as an operator runs them: the real CLI in a child process against the
 * seal API and the public verification endpoint listening on 127.0.0.1 (a stub authenticator, the
 * in-memory store, software keys, the TSA and OCSP cores of seal/test-support.ts). What the CLI
 * writes is checked with pdfsig, qpdf, `openssl ts -verify`, `openssl cms -verify` and
 * `pdftotext -bbox`: --level reaches B-LT and B-LTA, --anchor puts the seal beside the text, and
 * bad flags (an unknown level, a level files do not have, an anchor that is not there, an anchor
 * offset without an anchor) fail with the API's or the usage's message.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import t from 'tap';
import type { Principal } from '../../auth/operators.ts';
import { YinxinError } from '../../common/errors.ts';
import { MetricsRegistry } from '../../common/metrics.ts';
import { SealRegistry } from '../../seal/registry.ts';
import { sealApiRoutes, sealPublicRoutes } from '../../seal/routes.ts';
import { CREDIT_CODE, dssByQpdf, makeSealPki, run, signaturesByRegex } from '../../seal/test-support.ts';
import { simplePdf } from '../../seal/testing-pdfs.ts';
import { caStatusLookup } from '../../seal/verify.ts';
import { buildPublicApp, buildSecureApp } from '../app.ts';

const pki = await makeSealPki();
const registry = new SealRegistry({ store: pki.store, keys: pki.keys, audit: pki.audit, clock: pki.clock, ca: pki.ca, timeStamper: pki.timeStamper, validationData: pki.validationData });
const verifyOptions = { trustAnchors: [pki.root], statusOf: caStatusLookup(pki.ca) };
const principals: Record<string, Principal> = {
  'tok-clerk': { kind: 'operator', username: 'clerk', roles: ['ra-officer'], tokenId: 'c', mustChangePassword: false },
};
const common = { logger: pino({ level: 'silent' }), metrics: new MetricsRegistry(), bodyLimit: 1024 * 1024, trustProxy: false, health: [] };
const http = await buildPublicApp({ ...common, plugins: [(app) => sealPublicRoutes(app, { verifyOptions })] });
const https = await buildSecureApp({
  ...common, version: 'test',
  authenticator: { authenticate: (bearer) => { const p = principals[bearer]; if (!p) throw new YinxinError('unauthenticated', 'unknown token'); return p; } },
  plugins: [(app) => sealApiRoutes(app, { registry, verifyOptions })],
});
const publicUrl = await http.listen({ host: '127.0.0.1', port: 0 });
const apiUrl = await https.listen({ host: '127.0.0.1', port: 0 });
t.teardown(async () => {
  await http.close();
  await https.close();
  pki.cleanup();
});

const requested = await registry.request({ organization: '福州市人民政府办公厅', creditCode: CREDIT_CODE, name: '公章', kind: 'official', users: ['clerk'] }, { actor: 'sa1', person: 'sa1' });
const { id } = await registry.approve(requested.id, { actor: 'sa2', person: 'sa2' });
const input = pki.file('in.pdf', simplePdf());
const path = (name: string) => `${pki.dir}/${name}`;

const cli = new URL('../cli.ts', import.meta.url).pathname;

/** Runs `yinxin <args>` as the clerk (asynchronously: the servers live in this process). */
function yinxin(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], {
      env: { ...process.env, YINXIN_DATA: pki.dir, YINXIN_URL: apiUrl, YINXIN_PUBLIC_URL: publicUrl, YINXIN_TOKEN: 'tok-clerk', YINXIN_LOG_LEVEL: 'silent' },
      encoding: 'utf8',
    }, (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }));
  });
}

/** `openssl ts -verify` of the document time-stamp (the second signature dictionary) over its byte ranges. */
function docTimeStampVerifies(pdf: Uint8Array, name: string) {
  const stamp = signaturesByRegex(pdf)[1];
  if (!stamp) return { status: -1, out: 'no document time-stamp' };
  return run('openssl', ['ts', '-verify', '-token_in', '-in', pki.file(`${name}.tst`, stamp.cms), '-data', pki.file(`${name}.data`, stamp.signed),
    '-CAfile', pki.rootFile, '-untrusted', pki.chainFile]);
}

t.test('seal pdf --level B-LTA --anchor: the seal beside the text, a document time-stamp openssl accepts', async (t) => {
  const sealed = await yinxin('seal', 'pdf', id, input, '--level', 'B-LTA', '--anchor', 'Official document', '--anchor-x', '6', '--size', '60', '--out', path('lta.pdf'));
  t.equal(sealed.code, 0, sealed.stderr);
  t.match(sealed.stderr, /sealed PDF \(PAdES B-LTA\) written to .*lta\.pdf/);
  const pdf = new Uint8Array(readFileSync(path('lta.pdf')));

  const sig = run('pdfsig', [path('lta.pdf')]);
  t.match(sig.out, /Signature Field Name: Seal1[\s\S]*Signature is Valid\./, sig.out);
  t.match(sig.out, /Signature Field Name: DocTimeStamp1/);
  t.equal(run('qpdf', ['--check', path('lta.pdf')]).status, 0);
  const ts = docTimeStampVerifies(pdf, 'lta');
  t.equal(ts.status, 0, ts.out);
  t.ok(dssByQpdf(path('lta.pdf')).ocsps.length > 0, 'the DSS holds OCSP responses');

  // Beside the anchor: left edge 6 pt after the end of the text as poppler measures it, centred on its line.
  const bbox = run('pdftotext', ['-bbox', path('lta.pdf'), '-']).out;
  const words = [...bbox.matchAll(/<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">document<\/word>/g)];
  t.equal(words.length, 1, bbox);
  const [x0, y0, x1, y1] = /\/FT \/Sig \/T <[0-9a-f]+> \/V \d+ 0 R \/P \d+ 0 R \/Rect \[([\d.]+) ([\d.]+) ([\d.]+) ([\d.]+)\]/.exec(Buffer.from(pdf).toString('latin1'))!.slice(1).map(Number);
  t.ok(Math.abs(x0 - (Number(words[0][3]) + 6)) < 2, `seal at x ${x0}, text ends at ${words[0][3]}`);
  const lineMiddle = 842 - (Number(words[0][2]) + Number(words[0][4])) / 2;
  t.ok(Math.abs((y0 + y1) / 2 - lineMiddle) < 4, `seal centred at ${(y0 + y1) / 2}, line at ${lineMiddle}`);
  t.equal(x1 - x0, 60);

  const verified = await yinxin('seal', 'verify', path('lta.pdf'));
  t.equal(verified.code, 0, verified.stderr);
  t.match(verified.stdout, /Seal 1 \(Seal1\): VALID B-LTA/);
  t.match(verified.stdout, /Document time-stamp 1 \(DocTimeStamp1\): VALID/);
});

t.test('seal pdf --level B-LT and the default B-T; seal file --level B-T', async (t) => {
  const lt = await yinxin('seal', 'pdf', id, input, '--level', 'B-LT', '--page', '1', '--x', '300', '--y', '300', '--out', path('lt.pdf'));
  t.equal(lt.code, 0, lt.stderr);
  const ltPdf = new Uint8Array(readFileSync(path('lt.pdf')));
  t.equal(signaturesByRegex(ltPdf).length, 1, 'no document time-stamp at B-LT');
  t.ok(dssByQpdf(path('lt.pdf')).vri.length === 1, 'a DSS with the seal\'s VRI entry');
  t.match((await yinxin('seal', 'verify', path('lt.pdf'))).stdout, /VALID B-LT —/);
  t.match(Buffer.from(ltPdf).toString('latin1'), /\/Rect \[300 300 420 420\]/);

  const bt = await yinxin('seal', 'pdf', id, input, '--out', path('bt.pdf'));
  t.equal(bt.code, 0, bt.stderr);
  t.notMatch(readFileSync(path('bt.pdf'), 'latin1'), /\/DSS/);
  t.match(run('pdfsig', [path('bt.pdf')]).out, /Signature is Valid\./);

  const content = pki.file('letter.txt', '公文正文');
  const file = await yinxin('seal', 'file', id, content, '--level', 'B-T', '--out', path('letter.p7s'));
  t.equal(file.code, 0, file.stderr);
  t.match(file.stderr, /CAdES B-T/);
  const cms = run('openssl', ['cms', '-verify', '-binary', '-inform', 'DER', '-in', path('letter.p7s'), '-content', content, '-CAfile', pki.rootFile, '-purpose', 'any', '-out', '/dev/null']);
  t.equal(cms.status, 0, cms.out);
});

t.test('bad flags fail with a clear message and write nothing', async (t) => {
  const unknown = await yinxin('seal', 'pdf', id, input, '--level', 'B-B', '--out', path('bb.pdf'));
  t.not(unknown.code, 0);
  t.match(unknown.stderr, /400 .*level/);
  t.throws(() => readFileSync(path('bb.pdf')), 'no file written');
  const fileLt = await yinxin('seal', 'file', id, input, '--level', 'B-LT', '--out', path('x.p7s'));
  t.not(fileLt.code, 0);
  t.match(fileLt.stderr, /400 .*level/);
  const missing = await yinxin('seal', 'pdf', id, input, '--anchor', 'nowhere', '--out', path('nowhere.pdf'));
  t.not(missing.code, 0);
  t.match(missing.stderr, /422 validation-failed.*anchor text "nowhere" was not found/);
  const both = await yinxin('seal', 'pdf', id, input, '--anchor', 'Official', '--x', '100', '--y', '100');
  t.match(both.stderr, /either x and y or an anchor/);
  const offsetAlone = await yinxin('seal', 'pdf', id, input, '--anchor-x', '5');
  t.equal(offsetAlone.code, 2);
  t.match(offsetAlone.stderr, /usage: yinxin seal/);
  const noValue = await yinxin('seal', 'pdf', id, input, '--level');
  t.not(noValue.code, 0);
  t.match(noValue.stderr, /--level needs a value/);
});
