/**
 * The PDF reader's page lookup: page(n) descends by /Count and finds the same page as a full walk
 * of the tree (nested nodes, inherited MediaBox, a node without /Count); loops and pages that are
 * not there are refused as malformed.
 */
import t from 'tap';
import { isYinxinError } from '../common/errors.ts';
import { PdfDocument } from './pdf.ts';
import { buildPdf } from './testing-pdfs.ts';

function malformed(fn: () => unknown): boolean {
  try {
    fn();
    return false;
  } catch (e) {
    return isYinxinError(e, 'bad-request') && e.details?.reason === 'pdf-malformed';
  }
}

/** Root (2) -> [A (3): pages 5,6,7], page 8, [B (4): [C (9): page 10], page 11]; C has no /Count. */
function nestedTree(): Uint8Array {
  const page = (parent: number, w: number) => `<< /Type /Page /Parent ${parent} 0 R${w ? ` /MediaBox [0 0 ${w} 500]` : ''} >>`;
  return buildPdf([
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R 8 0 R 4 0 R] /Count 6 /MediaBox [0 0 100 100] >>',
    '<< /Type /Pages /Parent 2 0 R /Kids [5 0 R 6 0 R 7 0 R] /Count 3 /MediaBox [0 0 300 300] >>',
    '<< /Type /Pages /Parent 2 0 R /Kids [9 0 R 11 0 R] /Count 2 >>',
    page(3, 501), page(3, 0), page(3, 503), page(2, 504),
    '<< /Type /Pages /Parent 4 0 R /Kids [10 0 R] >>',
    page(9, 0), page(4, 506),
  ], '/Root 1 0 R');
}

t.test('page(n) by /Count finds what a walk of the whole tree finds', async (t) => {
  const doc = PdfDocument.parse(nestedTree());
  const walked = doc.pages();
  t.equal(doc.pageCount(), 6);
  t.same(walked.map((p) => p.ref.num), [5, 6, 7, 8, 10, 11]);
  for (let n = 1; n <= 6; n++) {
    const p = doc.page(n);
    t.equal(p.ref.num, walked[n - 1].ref.num, `page ${n}`);
    t.same(p.mediaBox, walked[n - 1].mediaBox, `page ${n} box`);
  }
  t.same(doc.page(2).mediaBox, [0, 0, 300, 300], 'inherited from its parent');
  t.same(doc.page(5).mediaBox, [0, 0, 100, 100], 'inherited from the root');
  for (const n of [0, 7]) t.ok(malformed(() => doc.page(n)), `page ${n} is refused`);
});

t.test('a page tree that loops is malformed', async (t) => {
  const loop = buildPdf([
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] >>',
    '<< /Type /Pages /Kids [2 0 R] >>',
  ], '/Root 1 0 R');
  const doc = PdfDocument.parse(loop);
  t.ok(malformed(() => doc.pageCount()));
  t.ok(malformed(() => doc.page(1)));
});

t.test('regression (fuzz): a reference with a generation number beyond 65535 is malformed, not a RangeError when sealing', async (t) => {
  const pdf = buildPdf([
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 4294967296 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>',
  ], '/Root 1 0 R');
  const doc = PdfDocument.parse(pdf);
  t.ok(malformed(() => doc.page(1)));
});
