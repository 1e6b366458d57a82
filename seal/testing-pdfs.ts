/**
 * Test input PDFs (not product code): a small hand-written document with a correct classic xref
 * table, and variants made by qpdf (multi-page, xref streams with object streams, encrypted); PNG
 * seal images.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32, deflateSync } from 'node:zlib';

/** A valid one-page PDF with some text, written by hand with byte-exact xref offsets. */
export function simplePdf(text = 'Official document', extraContent = ''): Uint8Array {
  const content = `BT /F1 24 Tf 72 720 Td (${text}) Tj ET${extraContent}`;
  return buildPdf([
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>',
    `<< /Length ${content.length} >>\nstream\n${content}\nendstream`,
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
    '<< /Title (Test) /Producer (yinxin tests) >>',
  ], '/Root 1 0 R /Info 6 0 R');
}

/**
 * A PDF of the given object bodies (object i+1 is objects[i]; strings are latin1, a Uint8Array is
 * written as is) with a classic xref table and a trailer holding `trailer` (e.g. '/Root 1 0 R').
 */
export function buildPdf(objects: Array<string | Uint8Array>, trailer: string): Uint8Array {
  const parts: Buffer[] = [Buffer.from('%PDF-1.7\n%\xe2\xe3\xcf\xd3\n', 'latin1')];
  let length = parts[0].length;
  const offsets: number[] = [];
  objects.forEach((body, i) => {
    offsets.push(length);
    const chunk = Buffer.concat([Buffer.from(`${i + 1} 0 obj\n`), typeof body === 'string' ? Buffer.from(body, 'latin1') : Buffer.from(body), Buffer.from('\nendobj\n')]);
    parts.push(chunk);
    length += chunk.length;
  });
  let xref = `xref\n0 ${objects.length + 1}\n0000000000 65535 f\r\n`;
  for (const o of offsets) xref += `${String(o).padStart(10, '0')} 00000 n\r\n`;
  xref += `trailer\n<< /Size ${objects.length + 1} ${trailer} /ID [<0123456789abcdef0123456789abcdef> <0123456789abcdef0123456789abcdef>] >>\nstartxref\n${length}\n%%EOF\n`;
  parts.push(Buffer.from(xref, 'latin1'));
  return new Uint8Array(Buffer.concat(parts));
}

/** A stream object's body: the dictionary entries given plus /Length, then the data. */
export function streamObject(dictEntries: string, data: Uint8Array | string): Uint8Array {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'latin1') : Buffer.from(data);
  return new Uint8Array(Buffer.concat([Buffer.from(`<< ${dictEntries} /Length ${bytes.length} >>\nstream\n`, 'latin1'), bytes, Buffer.from('\nendstream')]));
}

export function qpdf(dir: string, name: string, input: Uint8Array, args: string[]): Uint8Array {
  const inPath = join(dir, `${name}.in.pdf`);
  const outPath = join(dir, `${name}.pdf`);
  writeFileSync(inPath, input);
  try {
    execFileSync('qpdf', [...args.map((a) => (a === '@in' ? inPath : a)), ...(args.includes('@in') ? [] : [inPath]), outPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    // qpdf exits 3 for warnings but still writes the file.
    if ((e as { status?: number }).status !== 3) throw e;
  }
  return new Uint8Array(readFileSync(outPath));
}

/** The same document with an xref stream and object streams. */
export function xrefStreamPdf(dir: string, input = simplePdf()): Uint8Array {
  return qpdf(dir, 'xrefstream', input, ['--object-streams=generate']);
}

/** `pages` copies of the document's page in one file. */
export function multiPagePdf(dir: string, pages: number, input = simplePdf()): Uint8Array {
  const src = join(dir, 'page-src.pdf');
  writeFileSync(src, input);
  const outPath = join(dir, `pages-${pages}.pdf`);
  execFileSync('qpdf', ['--empty', '--pages', ...Array.from({ length: pages }, () => src), '--', outPath]);
  return new Uint8Array(readFileSync(outPath));
}

export function encryptedPdf(dir: string, input = simplePdf()): Uint8Array {
  return qpdf(dir, 'encrypted', input, ['--encrypt', 'user', 'owner', '256', '--']);
}

function chunk(type: string, data: Uint8Array): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'latin1'), Buffer.from(data)]);
  const out = Buffer.alloc(body.length + 8);
  out.writeUInt32BE(data.length, 0);
  body.copy(out, 4);
  out.writeUInt32BE(crc32(body), body.length + 4);
  return out;
}

/** Forward PNG filters (PNG s9.2), the row's filter type chosen by its index so every type occurs. */
function filterRows(pixels: Uint8Array, width: number, height: number, bpp: number): Buffer {
  const stride = width * bpp;
  const out = Buffer.alloc(height * (stride + 1));
  for (let r = 0; r < height; r++) {
    const type = r % 5;
    out[r * (stride + 1)] = type;
    for (let i = 0; i < stride; i++) {
      const x = pixels[r * stride + i];
      const a = i >= bpp ? pixels[r * stride + i - bpp] : 0;
      const b = r > 0 ? pixels[(r - 1) * stride + i] : 0;
      const c = i >= bpp && r > 0 ? pixels[(r - 1) * stride + i - bpp] : 0;
      const p = a + b - c;
      const [pa, pb, pc] = [Math.abs(p - a), Math.abs(p - b), Math.abs(p - c)];
      const predictor = [0, a, b, (a + b) >> 1, pa <= pb && pa <= pc ? a : pb <= pc ? b : c][type];
      out[r * (stride + 1) + 1 + i] = (x - predictor) & 0xff;
    }
  }
  return out;
}

export interface PngOptions { depth?: number; interlace?: number; palette?: number[][]; transparency?: number[]; dataRows?: number }

/** A PNG of 8-bit `pixels` (rows from the top), rows filtered with every PNG filter type, IDAT split in two. */
export function encodePng(width: number, height: number, colorType: number, pixels: Uint8Array, o: PngOptions = {}): Uint8Array {
  const bpp = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 }[colorType]!;
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([o.depth ?? 8, colorType, 0, 0, o.interlace ?? 0], 8);
  const parts = [Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr)];
  if (o.palette) parts.push(chunk('PLTE', new Uint8Array(o.palette.flat())));
  if (o.transparency) parts.push(chunk('tRNS', new Uint8Array(o.transparency)));
  parts.push(chunk('tEXt', Buffer.from('Comment\0yinxin test')));
  const data = deflateSync(filterRows(pixels, width, o.dataRows ?? height, bpp));
  // Two IDAT chunks: the data is one zlib stream across them.
  parts.push(chunk('IDAT', data.subarray(0, 10)), chunk('IDAT', data.subarray(10)), chunk('IEND', new Uint8Array(0)));
  return new Uint8Array(Buffer.concat(parts));
}
