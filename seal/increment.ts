/**
 * The bytes of one incremental update (ISO 32000-1 s7.5.6): new and replaced objects, then a
 * cross-reference section of the same kind as the document's last one (a classic table, or an
 * uncompressed xref stream, s7.5.8) and a trailer with /Prev. The original bytes are never touched.
 */
import { YinxinError } from '../common/errors.ts';
import { PdfDict, PdfName, serialize, type PdfDocument } from './pdf.ts';

export interface NewObject {
  num: number;
  gen: number;
  /** PDF syntax of a non-stream object, or a stream's dictionary (without /Length) and data. */
  body: string | { dict: PdfDict; data: Uint8Array };
}

/** Objects, then the cross-reference section and trailer (s7.5.6), as the bytes to append. */
export function writeIncrement(doc: PdfDocument, objects: NewObject[], nextNum: number): Uint8Array {
  const base = doc.bytes.length;
  const last = doc.bytes[base - 1];
  const chunks: Buffer[] = [];
  let length = 0;
  const push = (b: Buffer | string) => {
    const buf = typeof b === 'string' ? Buffer.from(b, 'latin1') : b;
    chunks.push(buf);
    length += buf.length;
  };
  if (last !== 0x0a && last !== 0x0d) push('\n');
  const offsets = new Map<number, { offset: number; gen: number }>();
  for (const o of objects) {
    offsets.set(o.num, { offset: base + length, gen: o.gen });
    if (typeof o.body === 'string') push(`${o.num} ${o.gen} obj\n${o.body}\nendobj\n`);
    else {
      const dict = o.body.dict.clone().set('Length', o.body.data.length);
      push(`${o.num} ${o.gen} obj\n${serialize(dict)}\nstream\n`);
      push(Buffer.from(o.body.data));
      push('\nendstream\nendobj\n');
    }
  }
  const trailer = new PdfDict([['Size', nextNum], ['Root', doc.catalogRef], ['Prev', doc.lastXrefOffset]]);
  for (const key of ['Info', 'ID'] as const) {
    const v = doc.trailer.get(key);
    if (v !== undefined) trailer.set(key, v);
  }
  const xrefAt = base + length;
  if (doc.sections[0].kind === 'table') {
    push('xref\n');
    const nums = [...offsets.keys()].sort((a, b) => a - b);
    for (const run of runs(nums)) {
      push(`${run[0]} ${run.length}\n`);
      for (const num of run) {
        const e = offsets.get(num)!;
        push(`${String(e.offset).padStart(10, '0')} ${String(e.gen).padStart(5, '0')} n\r\n`);
      }
    }
    push(`trailer\n${serialize(trailer)}\nstartxref\n${xrefAt}\n%%EOF\n`);
  } else {
    // An xref stream (s7.5.8) listing itself too; uncompressed, W [1 w 2].
    const xrefNum = nextNum;
    trailer.set('Size', nextNum + 1);
    offsets.set(xrefNum, { offset: xrefAt, gen: 0 });
    const nums = [...offsets.keys()].sort((a, b) => a - b);
    const w = 4;
    if (xrefAt > 0xffffffff) throw new YinxinError('payload-too-large', 'PDFs beyond 4 GiB are not supported');
    const data = Buffer.alloc(nums.length * (1 + w + 2));
    nums.forEach((num, i) => {
      const e = offsets.get(num)!;
      const p = i * (1 + w + 2);
      data[p] = 1;
      data.writeUInt32BE(e.offset, p + 1);
      data.writeUInt16BE(e.gen, p + 1 + w);
    });
    const index = runs(nums).flatMap((r) => [r[0], r.length]);
    trailer.set('Type', new PdfName('XRef')).set('W', [1, w, 2]).set('Index', index).set('Length', data.length);
    push(`${xrefNum} 0 obj\n${serialize(trailer)}\nstream\n`);
    push(data);
    push(`\nendstream\nendobj\nstartxref\n${xrefAt}\n%%EOF\n`);
  }
  const out = Buffer.concat(chunks, length);
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

function runs(sorted: number[]): number[][] {
  const out: number[][] = [];
  for (const n of sorted) {
    const cur = out[out.length - 1];
    if (cur && cur[cur.length - 1] === n - 1) cur.push(n);
    else out.push([n]);
  }
  return out;
}

/** The document followed by an update, in one buffer (not zero-filled first: every byte is copied in). */
export function appendUpdate(pdf: Uint8Array, update: Uint8Array): Uint8Array {
  const out = Buffer.concat([pdf, update], pdf.length + update.length);
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}
