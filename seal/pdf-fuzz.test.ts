/**
 * Fuzzing the PDF reader through everything that feeds it untrusted bytes: PdfDocument.parse, the
 * page tree, text search (anchors), sealing (B-T and B-LT) and verification. A deterministic PRNG
 * mutates real documents (ours, qpdf's xref-stream and multi-page ones, sealed ones with a DSS,
 * one with Flate content) by truncation, byte flips, shifted xref offsets, deleted objects, broken
 * streams, wrong /Length and /Count values and spliced chunks (sealed too). Every case must end in success or a
 * YinxinError (a clear problem for the client) within a time bound: never a TypeError, RangeError,
 * stack overflow or hang. A failing case prints its seed and mutation, to be kept as a regression.
 */
import { deflateSync } from 'node:zlib';
import t from 'tap';
import { isYinxinError } from '../common/errors.ts';
import { sealPdf, type PadesInput } from './pades.ts';
import { PdfDocument } from './pdf.ts';
import { makeSealPki } from './test-support.ts';
import { findText } from './text.ts';
import { buildPdf, multiPagePdf, simplePdf, streamObject, xrefStreamPdf } from './testing-pdfs.ts';
import { verifyPdf } from './verify.ts';

const CASES = Number(process.env.SEAL_FUZZ_CASES ?? 3000);
const SEED = Number(process.env.SEAL_FUZZ_SEED ?? 20261121);
const MAX_MS_PER_CASE = 2000;

const pki = await makeSealPki();
t.teardown(() => pki.cleanup());
const cred = await pki.credential('seal/fuzz', '福州市人民政府办公厅', '公章');
const input = (extra: Partial<PadesInput> = {}): PadesInput => ({
  ...cred, timeStamper: pki.timeStamper, clock: pki.clock, image: { kind: 'drawn', organization: '办公厅', sealName: '公章' }, ...extra,
});
const verifyOptions = { trustAnchors: [pki.root] };

/** mulberry32: small, fast, and the same sequence everywhere for a seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const flateDocument = buildPdf([
  '<< /Type /Catalog /Pages 2 0 R >>',
  '<< /Type /Pages /Kids [3 0 R] /Count 1 /Resources << /Font << /F1 5 0 R >> >> >>',
  '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>',
  streamObject('/Filter /FlateDecode', new Uint8Array(deflateSync('BT /F1 12 Tf 14 TL 72 700 Td (Seal here:) Tj T* [(A) -20 (B)] TJ ET'))),
  '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
], '/Root 1 0 R');
const sealedOnce = (await sealPdf(simplePdf(), input())).pdf;
const sealedLt = (await sealPdf(xrefStreamPdf(pki.dir), input({ level: 'B-LT', validationData: pki.validationData }))).pdf;
const seeds: Array<[string, Uint8Array]> = [
  ['simple', simplePdf()],
  ['xref stream', xrefStreamPdf(pki.dir)],
  ['three pages', multiPagePdf(pki.dir, 3)],
  ['flate content', flateDocument],
  ['sealed', sealedOnce],
  ['sealed B-LT', sealedLt],
];

type Mutation = (b: Buffer, r: () => number) => { bytes: Buffer; what: string };
const pick = (r: () => number, n: number) => Math.floor(r() * n);
const text = (b: Buffer) => b.toString('latin1');
const replaceNth = (b: Buffer, re: RegExp, r: () => number, f: (m: RegExpExecArray) => string): { bytes: Buffer; what: string } => {
  const s = text(b);
  const all = [...s.matchAll(new RegExp(re.source, 'g'))];
  if (all.length === 0) return { bytes: b, what: `no ${re.source}` };
  const m = all[pick(r, all.length)];
  const replacement = f(m);
  return { bytes: Buffer.from(s.slice(0, m.index) + replacement + s.slice(m.index + m[0].length), 'latin1'), what: `${JSON.stringify(m[0].slice(0, 40))} -> ${JSON.stringify(replacement.slice(0, 40))} at ${m.index}` };
};

const mutations: Record<string, Mutation> = {
  truncate: (b, r) => { const n = pick(r, b.length); return { bytes: b.subarray(0, n), what: `cut at ${n}` }; },
  flipBytes: (b, r) => {
    const c = Buffer.from(b);
    const at: number[] = [];
    for (let i = 0, n = 1 + pick(r, 8); i < n; i++) { const p = pick(r, c.length); c[p] ^= 1 << pick(r, 8); at.push(p); }
    return { bytes: c, what: `bits flipped at ${at.join(',')}` };
  },
  randomBytes: (b, r) => {
    const c = Buffer.from(b);
    const p = pick(r, c.length);
    const n = 1 + pick(r, 64);
    for (let i = 0; i < n && p + i < c.length; i++) c[p + i] = pick(r, 256);
    return { bytes: c, what: `${n} random bytes at ${p}` };
  },
  xrefOffset: (b, r) => replaceNth(b, /\d{10} \d{5} n/, r, (m) => `${String(Math.max(0, Number(m[0].slice(0, 10)) + pick(r, 41) - 20)).padStart(10, '0')}${m[0].slice(10)}`),
  startxref: (b, r) => replaceNth(b, /startxref\s+\d+/, r, () => `startxref\n${pick(r, b.length + 100)}`),
  deleteObject: (b, r) => replaceNth(b, /(?<!\d)\d{1,10} \d{1,5} obj[\s\S]*?endobj/, r, () => ''),
  objectNumber: (b, r) => replaceNth(b, /(?<!\d)\d{1,10} 0 obj/, r, () => `${pick(r, 40)} 0 obj`),
  reference: (b, r) => replaceNth(b, /(?<!\d)\d{1,10} 0 R/, r, () => `${pick(r, 60)} 0 R`),
  length: (b, r) => replaceNth(b, /\/Length \d+/, r, () => `/Length ${pick(r, 5000)}`),
  count: (b, r) => replaceNth(b, /\/Count \d+/, r, () => `/Count ${pick(r, 8) - 1}`),
  brokenStream: (b, r) => {
    const s = text(b);
    const starts = [...s.matchAll(/stream\r?\n/g)].map((m) => m.index! + m[0].length);
    if (!starts.length) return { bytes: b, what: 'no stream' };
    const p = starts[pick(r, starts.length)] + pick(r, 16);
    const c = Buffer.from(b);
    for (let i = 0; i < 8 && p + i < c.length; i++) c[p + i] = pick(r, 256);
    return { bytes: c, what: `stream data broken at ${p}` };
  },
  splice: (b, r) => {
    const from = pick(r, b.length);
    const len = pick(r, 200);
    const to = pick(r, b.length);
    return { bytes: Buffer.concat([b.subarray(0, to), b.subarray(from, from + len), b.subarray(to)]), what: `${len} bytes from ${from} copied to ${to}` };
  },
  names: (b, r) => replaceNth(b, /\/(Type|Kids|Pages|Root|Prev|Size|W|Index|N|First|Filter|DecodeParms|Contents|Font|ToUnicode|Widths|DSS|ByteRange)\b/, r, () => ['/Foo', '/Kids', '/Type', '/Pages', '/Length', '/W', ''][pick(r, 7)]),
  numbers: (b, r) => replaceNth(b, /\b\d+\b/, r, () => ['0', '-1', '99999999999', '1e308', '3.5', 'NaN', '4294967296'][pick(r, 7)]),
};
const names = Object.keys(mutations);

/** Every entry point that reads the document; returns normally or throws what the case threw. */
async function exercise(bytes: Uint8Array, r: () => number, seal: boolean): Promise<void> {
  const u8 = new Uint8Array(bytes);
  let doc: PdfDocument | undefined;
  try {
    doc = PdfDocument.parse(u8);
    const count = doc.pageCount();
    doc.page(1 + pick(r, Math.min(count, 1000)));
    findText(doc, 'Seal here:');
  } finally {
    // Sealing and verification parse again on their own, whatever happened above.
    const anchored = r() < 0.3;
    const sealing = seal ? sealPdf(u8, input({ placement: anchored ? { anchor: { text: 'Seal here' } } : undefined })) : Promise.resolve();
    const verifying = verifyPdf(u8, verifyOptions);
    const results = await Promise.allSettled([sealing, verifying]);
    for (const res of results) if (res.status === 'rejected') throw res.reason;
  }
}

t.test(`${CASES} mutations of ${seeds.length} documents: success or a YinxinError, each within ${MAX_MS_PER_CASE} ms`, async (t) => {
  const r = prng(SEED);
  const outcomes: Record<string, number> = { ok: 0 };
  const failures: string[] = [];
  for (let i = 0; i < CASES; i++) {
    const [seedName, seed] = seeds[i % seeds.length];
    let bytes: Buffer = Buffer.from(seed);
    const applied: string[] = [];
    for (let k = 0, n = 1 + pick(r, 3); k < n; k++) {
      const name = names[pick(r, names.length)];
      const m = mutations[name](bytes, r);
      bytes = m.bytes;
      applied.push(`${name}: ${m.what}`);
    }
    const started = performance.now();
    try {
      await exercise(bytes, r, true);
      outcomes.ok++;
    } catch (e) {
      if (isYinxinError(e)) {
        const key = `${e.code}${e.details?.reason ? `/${e.details.reason}` : ''}`;
        outcomes[key] = (outcomes[key] ?? 0) + 1;
      } else failures.push(`case ${i} (${seedName}; ${applied.join('; ')}): ${(e as Error)?.stack ?? String(e)}`);
    }
    const ms = performance.now() - started;
    if (ms > MAX_MS_PER_CASE) failures.push(`case ${i} (${seedName}; ${applied.join('; ')}) took ${ms.toFixed(0)} ms`);
    if (failures.length >= 5) break;
  }
  t.same(failures, [], 'no crash, no untyped error, no slow case');
  t.ok(outcomes.ok > 0 && Object.keys(outcomes).length > 1, `outcomes: ${JSON.stringify(outcomes)}`);
});
