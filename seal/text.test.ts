/**
 * Text-anchor placement: documents made here (Flate-compressed content with Td, TD, T*, Tm, cm, TJ
 * kerning, a Form XObject, a composite font with a ToUnicode CMap) are sealed beside an anchor
 * text, and the widget's /Rect is compared with where poppler's `pdftotext -bbox` says the words
 * are. Text that is not there, or that cannot be read (a CID font without ToUnicode), is a 422
 * 'validation-failed' with details.reason 'anchor-not-found'.
 */
import { deflateSync } from 'node:zlib';
import t, { type Test } from 'tap';
import { isYinxinError } from '../common/errors.ts';
import { sealPdf, type SealPlacement } from './pades.ts';
import { makeSealPki, run } from './test-support.ts';
import { buildPdf, streamObject } from './testing-pdfs.ts';

const pki = await makeSealPki();
t.teardown(() => pki.cleanup());
const office = await pki.credential('seal/office', '福州市人民政府办公厅', '公章');

const flate = (content: string) => streamObject('/Filter /FlateDecode', new Uint8Array(deflateSync(Buffer.from(content, 'latin1'))));

/**
 * Page 1: "Draft". Page 2: lines by Td / T* / TD, "Seal here:" split by TJ kerning, a line by Tm
 * under a cm translation, and "Approved by the Bureau" inside a Form XObject with its own /Matrix.
 */
function latinDocument(): Uint8Array {
  const page2 = [
    'BT /F1 12 Tf 14 TL 72 700 Td (First line of the notice.) Tj T* (The quick brown fox) Tj 0 -28 TD [(Seal) -250 (here:)] TJ ET',
    'q 1 0 0 1 40 -100 cm BT /F2 10 Tf 1 0 0 1 260 500 Tm (Date of issue) Tj ET Q',
    'q /Fm1 Do Q',
  ].join('\n');
  return buildPdf([
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R 4 0 R] /Count 2 /MediaBox [0 0 595 842] /Resources << /Font << /F1 7 0 R /F2 8 0 R >> /XObject << /Fm1 9 0 R >> >> >>',
    '<< /Type /Page /Parent 2 0 R /Contents 5 0 R >>',
    '<< /Type /Page /Parent 2 0 R /Contents 6 0 R >>',
    flate('BT /F1 24 Tf 72 720 Td (Draft) Tj ET'),
    flate(page2),
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>',
    '<< /Type /Font /Subtype /Type1 /BaseFont /Times-Roman >>',
    streamObject('/Type /XObject /Subtype /Form /BBox [0 0 300 100] /Matrix [1 0 0 1 100 150] /Resources << /Font << /F1 7 0 R >> >>',
      'BT /F1 11 Tf 10 20 Td (Approved by the Bureau) Tj ET'),
  ], '/Root 1 0 R');
}

/** One page, a composite font (Identity-H) whose ToUnicode maps CIDs 1..4 to （盖章）; `withToUnicode` false leaves it out. */
function chineseDocument(withToUnicode = true): Uint8Array {
  const cmap = [
    '/CIDInit /ProcSet findresource begin 12 dict begin begincmap',
    '/CMapName /Test-UCS def /CMapType 2 def',
    '1 begincodespacerange <0000> <FFFF> endcodespacerange',
    '1 beginbfchar <0001> <FF08> endbfchar',
    '1 beginbfrange <0002> <0003> [<76D6> <7AE0>] endbfrange',
    '1 beginbfchar <0004> <FF09> endbfchar',
    'endcmap CMapName currentdict /CMap defineresource pop end end',
  ].join('\n');
  return buildPdf([
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << /Font << /F1 5 0 R /F2 8 0 R >> >> >>',
    flate('BT /F2 12 Tf 72 760 Td (Unit:) Tj ET BT /F1 16 Tf 300 300 Td <0001000200030004> Tj ET'),
    `<< /Type /Font /Subtype /Type0 /BaseFont /SimSun /Encoding /Identity-H /DescendantFonts [6 0 R]${withToUnicode ? ' /ToUnicode 7 0 R' : ''} >>`,
    '<< /Type /Font /Subtype /CIDFontType2 /BaseFont /SimSun /CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> /DW 1000 /W [1 [500] 4 [500]] >>',
    streamObject('', cmap),
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
  ], '/Root 1 0 R');
}

interface Word { text: string; page: number; x0: number; x1: number; y0: number; y1: number }

/** Words and their boxes by `pdftotext -bbox`, in PDF coordinates (origin lower left, 842 high pages). */
function popplerWords(pdf: Uint8Array, name: string): Word[] {
  const html = run('pdftotext', ['-bbox', pki.file(`${name}.pdf`, pdf), '-']).out;
  const words: Word[] = [];
  let page = 0;
  for (const line of html.split('\n')) {
    if (line.includes('<page ')) page++;
    const m = /<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)<\/word>/.exec(line);
    if (m) words.push({ text: m[5], page, x0: Number(m[1]), x1: Number(m[3]), y0: 842 - Number(m[4]), y1: 842 - Number(m[2]) });
  }
  return words;
}

/** The /Rect of the newest seal, read with a regular expression. */
function rect(pdf: Uint8Array): number[] {
  const all = [...Buffer.from(pdf).toString('latin1').matchAll(/\/Rect \[([\d. -]+)\]/g)];
  return all[all.length - 1][1].trim().split(/\s+/).map(Number);
}

async function sealAt(pdf: Uint8Array, placement: SealPlacement): Promise<Uint8Array> {
  const r = await sealPdf(pdf, { ...office, timeStamper: pki.timeStamper, clock: pki.clock, image: { kind: 'drawn', organization: '办公厅', sealName: '公章' }, placement });
  t.match(run('pdfsig', [pki.file('anchored.pdf', r.pdf)]).out, /Signature is Valid\./);
  return r.pdf;
}

/** The seal starts where the last word ends (+dx) and its middle is on the words' line (+dy). */
function besides(t: Test, sealed: Uint8Array, words: Word[], size: number, dx = 0, dy = 0) {
  const [x0, y0, x1, y1] = rect(sealed);
  t.ok(Math.abs(x1 - x0 - size) < 0.01 && Math.abs(y1 - y0 - size) < 0.01, `a ${size} pt square: ${[x0, y0, x1, y1]}`);
  const last = words[words.length - 1];
  t.ok(Math.abs(x0 - (last.x1 + dx)) < 1.5, `left edge ${x0} at the end of "${last.text}" (${last.x1}) + ${dx}`);
  const middle = (y0 + y1) / 2 - dy;
  t.ok(middle > Math.min(...words.map((w) => w.y0)) - 1 && middle < Math.max(...words.map((w) => w.y1)) + 1, `middle ${middle} on the line ${words.map((w) => `${w.y0}..${w.y1}`).join(', ')}`);
}

t.test('Latin text: Td/T*/TD with TJ kerning, Tm under cm, a Form XObject', async (t) => {
  const pdf = latinDocument();
  const words = popplerWords(pdf, 'latin');
  /** Consecutive words as poppler lists them. */
  const phrase = (text: string) => {
    const parts = text.split(' ');
    const i = words.findIndex((_, k) => parts.every((p, j) => words[k + j]?.text === p));
    return words.slice(i, i + parts.length);
  };
  t.equal(phrase('here:')[0]?.page, 2, 'poppler sees the anchor on page 2');

  const a = await sealAt(pdf, { anchor: { text: 'Seal here:' }, size: 80 });
  besides(t, a, phrase('Seal here:'), 80);
  t.match(Buffer.from(a).toString('latin1'), new RegExp(`/P 4 0 R`), 'the widget is on page 2');

  const b = await sealAt(pdf, { anchor: { text: 'of issue', offset: { x: 10, y: -5 } }, size: 60 });
  besides(t, b, phrase('of issue'), 60, 10, -5);

  const c = await sealAt(pdf, { anchor: { text: 'the Bureau' }, size: 50 });
  besides(t, c, phrase('the Bureau'), 50);

  const d = await sealAt(pdf, { anchor: { text: 'Draft' }, size: 40 });
  t.match(Buffer.from(d).toString('latin1'), /\/P 3 0 R/, '"Draft" is on page 1');
});

t.test('Chinese text in a composite font with ToUnicode', async (t) => {
  const pdf = chineseDocument();
  const words = popplerWords(pdf, 'chinese');
  const anchorWord = words.find((w) => w.text.includes('盖章'));
  t.ok(anchorWord, `poppler reads the text: ${words.map((w) => w.text).join(' ')}`);
  const sealed = await sealAt(pdf, { anchor: { text: '（盖章）' }, size: 100 });
  besides(t, sealed, [anchorWord!], 100);
});

t.test('text that is not there, or cannot be read, is a clear 422', async (t) => {
  const cases: Array<[string, Uint8Array, SealPlacement]> = [
    ['absent', latinDocument(), { anchor: { text: 'Signature of the mayor' } }],
    ['on another page', latinDocument(), { page: 1, anchor: { text: 'Seal here:' } }],
    ['CID font without ToUnicode', chineseDocument(false), { anchor: { text: '盖章' } }],
  ];
  for (const [label, pdf, placement] of cases) {
    const e = await sealPdf(pdf, { ...office, timeStamper: pki.timeStamper, clock: pki.clock, image: { kind: 'drawn', organization: 'x', sealName: 'y' }, placement }).then(() => undefined, (x: unknown) => x);
    t.ok(isYinxinError(e, 'validation-failed') && e.status === 422 && e.details?.reason === 'anchor-not-found', `${label}: ${String(e)}`);
  }
  for (const placement of [{ anchor: { text: '' } }, { anchor: { text: 'Draft' }, x: 10, y: 10 }] as SealPlacement[]) {
    const e = await sealPdf(latinDocument(), { ...office, timeStamper: pki.timeStamper, clock: pki.clock, image: { kind: 'drawn', organization: 'x', sealName: 'y' }, placement }).then(() => undefined, (x: unknown) => x);
    t.ok(isYinxinError(e, 'validation-failed') && e.details?.field === 'anchor', JSON.stringify(placement));
  }
});
