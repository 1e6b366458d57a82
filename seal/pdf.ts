/**
 * A minimal PDF reader (ISO 32000-1) for what an incremental update and signature verification
 * need: the cross-reference chain (classic tables s7.5.4 and xref streams s7.5.8, /Prev and
 * hybrid /XRefStm), indirect objects, object streams (s7.5.7, read only), the catalog, the page
 * tree and the AcroForm. It never rewrites: PdfDocument keeps the original bytes untouched.
 * Encrypted documents are refused (sealing one would need its keys); anything unreadable is
 * refused with the offset where reading failed.
 */
import { inflateSync } from 'node:zlib';
import { YinxinError } from '../common/errors.ts';

export class PdfName {
  readonly name: string;
  constructor(name: string) {
    this.name = name;
  }
}

export class PdfString {
  readonly bytes: Uint8Array;
  readonly hex: boolean;
  constructor(bytes: Uint8Array, hex = false) {
    this.bytes = bytes;
    this.hex = hex;
  }
  text(): string {
    const b = this.bytes;
    if (b.length >= 2 && b[0] === 0xfe && b[1] === 0xff) {
      let s = '';
      for (let i = 2; i + 1 < b.length; i += 2) s += String.fromCharCode((b[i] << 8) | b[i + 1]);
      return s;
    }
    return Buffer.from(b).toString('latin1');
  }
}

export class PdfRef {
  readonly num: number;
  readonly gen: number;
  constructor(num: number, gen: number) {
    this.num = num;
    this.gen = gen;
  }
}

export class PdfDict {
  readonly map: Map<string, PdfObject>;
  constructor(entries?: Iterable<[string, PdfObject]>) {
    this.map = new Map(entries);
  }
  get(key: string): PdfObject | undefined {
    return this.map.get(key);
  }
  set(key: string, value: PdfObject): this {
    this.map.set(key, value);
    return this;
  }
  name(key: string): string | undefined {
    const v = this.map.get(key);
    return v instanceof PdfName ? v.name : undefined;
  }
  clone(): PdfDict {
    return new PdfDict(this.map);
  }
}

export class PdfStream {
  readonly dict: PdfDict;
  /** The stream's bytes as stored (still encoded). */
  readonly raw: Uint8Array;
  constructor(dict: PdfDict, raw: Uint8Array) {
    this.dict = dict;
    this.raw = raw;
  }
}

export type PdfObject = null | boolean | number | PdfName | PdfString | PdfRef | PdfDict | PdfStream | PdfObject[];

export type XrefEntry =
  | { type: 'offset'; offset: number; gen: number }
  | { type: 'compressed'; stream: number; index: number }
  | { type: 'free' };

export function malformed(message: string, details: Record<string, unknown> = {}): YinxinError {
  return new YinxinError('bad-request', `not a readable PDF: ${message}`, { reason: 'pdf-malformed', ...details });
}

/** Byte classes as lookup tables (a Set lookup per byte was a tenth of sealing a 500 KB PDF). */
function byteClass(bytes: number[]): { has(b: number | undefined): boolean } {
  const table = new Uint8Array(256);
  for (const b of bytes) table[b] = 1;
  return { has: (b) => b !== undefined && table[b] === 1 };
}
const WS = byteClass([0x00, 0x09, 0x0a, 0x0c, 0x0d, 0x20]);
const DELIM = byteClass([0x28, 0x29, 0x3c, 0x3e, 0x5b, 0x5d, 0x7b, 0x7d, 0x2f, 0x25]);

/** Tokenizer and object parser over a byte array (s7.2, s7.3). */
export class PdfLexer {
  readonly b: Uint8Array;
  /** The same bytes as a Buffer view (no copy), to decode tokens without copying them first. */
  readonly #text: Buffer;
  pos: number;
  /** Resolves an indirect /Length of a stream. */
  readonly lengthOf: ((ref: PdfRef) => number | undefined) | undefined;
  constructor(bytes: Uint8Array, pos = 0, lengthOf?: (ref: PdfRef) => number | undefined) {
    this.b = bytes;
    this.#text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = pos;
    this.lengthOf = lengthOf;
  }

  skipWs(): void {
    const b = this.b;
    for (;;) {
      while (this.pos < b.length && WS.has(b[this.pos])) this.pos++;
      if (b[this.pos] === 0x25) {
        while (this.pos < b.length && b[this.pos] !== 0x0a && b[this.pos] !== 0x0d) this.pos++;
      } else return;
    }
  }

  /** A regular token (number, keyword) without consuming delimiters. */
  word(): string {
    this.skipWs();
    const start = this.pos;
    while (this.pos < this.b.length && !WS.has(this.b[this.pos]) && !DELIM.has(this.b[this.pos])) this.pos++;
    return this.#text.toString('latin1', start, this.pos);
  }

  peekWord(): string {
    const save = this.pos;
    const w = this.word();
    this.pos = save;
    return w;
  }

  expect(keyword: string): void {
    const at = this.pos;
    const w = this.word();
    if (w !== keyword) throw malformed(`expected "${keyword}" at offset ${at}, found "${w.slice(0, 20)}"`, { offset: at });
  }

  int(): number {
    const at = this.pos;
    const w = this.word();
    if (!/^\d+$/.test(w)) throw malformed(`expected an integer at offset ${at}`, { offset: at });
    return Number(w);
  }

  parse(depth = 0): PdfObject {
    if (depth > 64) throw malformed(`objects nested too deeply at offset ${this.pos}`);
    this.skipWs();
    const b = this.b;
    const at = this.pos;
    if (at >= b.length) throw malformed('unexpected end of file', { offset: at });
    const c = b[at];
    if (c === 0x2f) { // name
      this.pos++;
      const start = this.pos;
      while (this.pos < b.length && !WS.has(b[this.pos]) && !DELIM.has(b[this.pos])) this.pos++;
      const rawName = this.#text.toString('latin1', start, this.pos);
      return new PdfName(rawName.replace(/#([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))));
    }
    if (c === 0x3c && b[at + 1] === 0x3c) { // dictionary, maybe a stream
      this.pos += 2;
      const dict = new PdfDict();
      for (;;) {
        this.skipWs();
        if (b[this.pos] === 0x3e && b[this.pos + 1] === 0x3e) { this.pos += 2; break; }
        if (this.pos >= b.length) throw malformed(`unterminated dictionary from offset ${at}`, { offset: at });
        const key = this.parse(depth + 1);
        if (!(key instanceof PdfName)) throw malformed(`a dictionary key is not a name at offset ${this.pos}`, { offset: this.pos });
        dict.set(key.name, this.parse(depth + 1));
      }
      const save = this.pos;
      if (this.word() === 'stream') return this.#stream(dict, at);
      this.pos = save;
      return dict;
    }
    if (c === 0x3c) { // hex string
      const end = b.indexOf(0x3e, at + 1);
      if (end < 0) throw malformed(`unterminated hex string at offset ${at}`, { offset: at });
      let h = Buffer.from(b.subarray(at + 1, end)).toString('latin1').replace(/[\s\0]/g, '');
      if (!/^[0-9a-fA-F]*$/.test(h)) throw malformed(`bad hex string at offset ${at}`, { offset: at });
      if (h.length % 2) h += '0';
      this.pos = end + 1;
      return new PdfString(new Uint8Array(Buffer.from(h, 'hex')), true);
    }
    if (c === 0x28) return this.#literal();
    if (c === 0x5b) {
      this.pos++;
      const arr: PdfObject[] = [];
      for (;;) {
        this.skipWs();
        if (b[this.pos] === 0x5d) { this.pos++; return arr; }
        if (this.pos >= b.length) throw malformed(`unterminated array from offset ${at}`, { offset: at });
        arr.push(this.parse(depth + 1));
      }
    }
    const w = this.word();
    if (w === '') throw malformed(`unexpected character "${String.fromCharCode(c)}" at offset ${at}`, { offset: at });
    if (w === 'true') return true;
    if (w === 'false') return false;
    if (w === 'null') return null;
    if (/^[+-]?(\d+\.?\d*|\.\d+)$/.test(w)) {
      // "n g R" is a reference (s7.3.10); generation numbers are at most 65535 (s7.5.4).
      if (/^\d+$/.test(w)) {
        const save = this.pos;
        const g = this.word();
        if (/^\d+$/.test(g) && this.word() === 'R') {
          if (Number(g) > 65535 || !Number.isSafeInteger(Number(w))) throw malformed(`bad object reference "${w} ${g} R" at offset ${at}`, { offset: at });
          return new PdfRef(Number(w), Number(g));
        }
        this.pos = save;
      }
      return Number(w);
    }
    throw malformed(`unexpected token "${w.slice(0, 20)}" at offset ${at}`, { offset: at });
  }

  #literal(): PdfString {
    const b = this.b;
    const out: number[] = [];
    let depth = 0;
    let i = this.pos + 1;
    for (; i < b.length; i++) {
      const c = b[i];
      if (c === 0x5c) {
        const n = b[++i];
        const map: Record<number, number> = { 0x6e: 10, 0x72: 13, 0x74: 9, 0x62: 8, 0x66: 12, 0x28: 0x28, 0x29: 0x29, 0x5c: 0x5c };
        if (n in map) out.push(map[n]);
        else if (n >= 0x30 && n <= 0x37) {
          let v = n - 0x30;
          for (let k = 0; k < 2 && b[i + 1] >= 0x30 && b[i + 1] <= 0x37; k++) v = v * 8 + (b[++i] - 0x30);
          out.push(v & 0xff);
        } else if (n === 0x0d) { if (b[i + 1] === 0x0a) i++; } else if (n !== 0x0a) out.push(n);
        continue;
      }
      if (c === 0x28) depth++;
      if (c === 0x29) { if (depth === 0) break; depth--; }
      out.push(c);
    }
    if (i >= b.length) throw malformed(`unterminated string at offset ${this.pos}`, { offset: this.pos });
    this.pos = i + 1;
    return new PdfString(new Uint8Array(out));
  }

  #stream(dict: PdfDict, at: number): PdfStream {
    const b = this.b;
    // s7.3.8.1: "stream" is followed by CRLF or LF.
    if (b[this.pos] === 0x0d && b[this.pos + 1] === 0x0a) this.pos += 2;
    else if (b[this.pos] === 0x0a || b[this.pos] === 0x0d) this.pos++;
    const start = this.pos;
    let length = dict.get('Length');
    if (length instanceof PdfRef) length = this.lengthOf?.(length);
    let end = -1;
    if (typeof length === 'number' && Number.isInteger(length) && length >= 0 && start + length <= b.length) {
      const after = new PdfLexer(b, start + length);
      if (after.word() === 'endstream') { end = start + length; this.pos = after.pos; }
    }
    if (end < 0) {
      // A wrong /Length: find endstream, as readers do.
      const idx = Buffer.from(b.buffer, b.byteOffset, b.byteLength).indexOf('endstream', start, 'latin1');
      if (idx < 0) throw malformed(`stream at offset ${at} has no endstream`, { offset: at });
      end = idx;
      while (end > start && (b[end - 1] === 0x0a || b[end - 1] === 0x0d)) end--;
      this.pos = idx + 9;
    }
    return new PdfStream(dict, b.subarray(start, end));
  }
}

/** s7.4.4 FlateDecode with the PNG predictors of s7.4.4.4 (what xref and object streams use). */
export function decodeStream(stream: PdfStream): Uint8Array {
  const filter = stream.dict.get('Filter');
  const filters = filter === undefined ? [] : Array.isArray(filter) ? filter : [filter];
  let data = stream.raw;
  const parms = stream.dict.get('DecodeParms');
  for (const [i, f] of filters.entries()) {
    if (!(f instanceof PdfName)) throw malformed('a stream filter is not a name');
    if (f.name !== 'FlateDecode') throw malformed(`stream filter ${f.name} is not supported for xref and object streams`);
    try {
      data = new Uint8Array(inflateSync(data));
    } catch (e) {
      throw malformed(`a FlateDecode stream does not inflate (${(e as Error).message})`);
    }
    const p = Array.isArray(parms) ? parms[i] : parms;
    if (p instanceof PdfDict) data = unpredict(data, p);
  }
  return data;
}

function unpredict(data: Uint8Array, parms: PdfDict): Uint8Array {
  const predictor = parms.get('Predictor');
  if (typeof predictor !== 'number' || predictor < 10) {
    if (predictor === 2) throw malformed('TIFF predictor is not supported');
    return data;
  }
  const columns = typeof parms.get('Columns') === 'number' ? parms.get('Columns') as number : 1;
  const colors = typeof parms.get('Colors') === 'number' ? parms.get('Colors') as number : 1;
  const bpc = typeof parms.get('BitsPerComponent') === 'number' ? parms.get('BitsPerComponent') as number : 8;
  if (![columns, colors, bpc].every((v) => Number.isInteger(v) && v >= 1 && v <= 1 << 20)) throw malformed('bad PNG predictor parameters');
  return unpredictRows(data, { colors, columns, bpc });
}

/** Reverses PNG row filters (PNG s9, PDF s7.4.4.4): each row is a filter-type byte and the filtered samples. */
export function unpredictRows(data: Uint8Array, { colors, columns, bpc = 8 }: { colors: number; columns: number; bpc?: number }): Uint8Array {
  const bpp = Math.max(1, Math.ceil((colors * bpc) / 8));
  const rowLength = Math.ceil((columns * colors * bpc) / 8);
  const rows = Math.floor(data.length / (rowLength + 1));
  const out = new Uint8Array(rows * rowLength);
  let prev = new Uint8Array(rowLength);
  for (let r = 0; r < rows; r++) {
    const type = data[r * (rowLength + 1)];
    const row = data.subarray(r * (rowLength + 1) + 1, (r + 1) * (rowLength + 1));
    const cur = out.subarray(r * rowLength, (r + 1) * rowLength);
    for (let i = 0; i < rowLength; i++) {
      const left = i >= bpp ? cur[i - bpp] : 0;
      const up = prev[i];
      const upLeft = i >= bpp ? prev[i - bpp] : 0;
      let v: number;
      switch (type) {
        case 0: v = row[i]; break;
        case 1: v = row[i] + left; break;
        case 2: v = row[i] + up; break;
        case 3: v = row[i] + ((left + up) >> 1); break;
        case 4: {
          const p = left + up - upLeft;
          const pa = Math.abs(p - left), pb = Math.abs(p - up), pc = Math.abs(p - upLeft);
          v = row[i] + (pa <= pb && pa <= pc ? left : pb <= pc ? up : upLeft);
          break;
        }
        default: throw malformed(`bad PNG predictor row type ${type}`);
      }
      cur[i] = v & 0xff;
    }
    prev = cur;
  }
  return out;
}

export interface XrefSection {
  /** Where this section starts (the startxref value that names it). */
  offset: number;
  kind: 'table' | 'stream';
  trailer: PdfDict;
}

export class PdfDocument {
  readonly bytes: Uint8Array;
  readonly xref = new Map<number, XrefEntry>();
  /** Newest first. */
  readonly sections: XrefSection[] = [];
  readonly #cache = new Map<number, PdfObject>();
  readonly #objStreams = new Map<number, { offsets: Map<number, number>; data: Uint8Array; first: number }>();

  private constructor(bytes: Uint8Array) {
    this.bytes = bytes;
  }

  /** Parses the cross-reference chain; refuses encrypted and unreadable files. */
  static parse(bytes: Uint8Array): PdfDocument {
    const doc = new PdfDocument(bytes);
    const head = Buffer.from(bytes.subarray(0, 1024)).toString('latin1');
    if (!head.includes('%PDF-')) throw malformed('no %PDF- header');
    doc.#readXrefChain();
    const trailer = doc.trailer;
    if (trailer.get('Encrypt') !== undefined) {
      throw new YinxinError('bad-request', 'the PDF is encrypted: decrypt it before sealing (an incremental update cannot be written without its keys)', { reason: 'pdf-encrypted' });
    }
    if (!(trailer.get('Root') instanceof PdfRef)) throw malformed('the trailer has no /Root');
    const catalog = doc.resolve(trailer.get('Root'));
    if (!(catalog instanceof PdfDict) || catalog.name('Type') !== 'Catalog') throw malformed('/Root is not a /Catalog dictionary');
    return doc;
  }

  /** The newest trailer (for an xref stream, its dictionary). */
  get trailer(): PdfDict {
    return this.sections[0].trailer;
  }

  get lastXrefOffset(): number {
    return this.sections[0].offset;
  }

  get size(): number {
    const s = this.trailer.get('Size');
    if (typeof s !== 'number' || !Number.isInteger(s) || s < 1) throw malformed('the trailer /Size is missing or invalid');
    return s;
  }

  #readXrefChain(): void {
    const b = this.bytes;
    const tail = Buffer.from(b.subarray(Math.max(0, b.length - 2048))).toString('latin1');
    const m = /startxref\s+(\d+)\s+%%EOF\s*$/.exec(tail) ?? /startxref\s+(\d+)\s+%%EOF/.exec(tail);
    if (!m) throw malformed('no startxref / %%EOF at the end (truncated?)');
    let offset: number | undefined = Number(m[1]);
    const seen = new Set<number>();
    while (offset !== undefined) {
      if (seen.has(offset) || seen.size > 10_000) throw malformed('the /Prev chain loops');
      seen.add(offset);
      if (offset >= b.length) throw malformed(`startxref/Prev ${offset} points past the end of the file (truncated?)`, { offset });
      const lex = new PdfLexer(b, offset);
      let trailer: PdfDict;
      if (lex.peekWord() === 'xref') {
        trailer = this.#readTable(lex);
        this.sections.push({ offset, kind: 'table', trailer });
        // s7.5.8.4: hybrid files keep the compressed objects' entries in an xref stream.
        const stm = trailer.get('XRefStm');
        if (typeof stm === 'number') this.#readXrefStream(stm);
      } else {
        trailer = this.#readXrefStream(offset);
        this.sections.push({ offset, kind: 'stream', trailer });
      }
      const prev = trailer.get('Prev');
      offset = typeof prev === 'number' ? prev : undefined;
    }
  }

  #put(num: number, entry: XrefEntry): void {
    // Newer sections are read first: the first entry seen wins.
    if (!this.xref.has(num)) this.xref.set(num, entry);
  }

  #readTable(lex: PdfLexer): PdfDict {
    lex.expect('xref');
    for (;;) {
      const w = lex.peekWord();
      if (w === 'trailer') break;
      const start = lex.int();
      const count = lex.int();
      if (count > 10_000_000) throw malformed('an xref subsection is implausibly large');
      lex.skipWs();
      if (this.#readFixedEntries(lex, start, count)) continue;
      for (let i = 0; i < count; i++) {
        const offset = lex.int();
        const gen = lex.int();
        const kind = lex.word();
        if (kind === 'n') this.#put(start + i, { type: 'offset', offset, gen });
        else if (kind === 'f') this.#put(start + i, { type: 'free' });
        else throw malformed(`bad xref entry for object ${start + i} at offset ${lex.pos}`, { offset: lex.pos });
      }
    }
    lex.expect('trailer');
    const trailer = lex.parse();
    if (!(trailer instanceof PdfDict)) throw malformed('the trailer is not a dictionary');
    return trailer;
  }

  /**
   * The entries of a subsection when every one is in the exact 20-byte form of s7.5.4
   * ("nnnnnnnnnn ggggg n" and a two-byte end of line), read straight from the bytes; false (and
   * nothing read) otherwise, for the tokenizer to read them.
   */
  #readFixedEntries(lex: PdfLexer, start: number, count: number): boolean {
    const b = this.bytes;
    const at = lex.pos;
    if (at + count * 20 > b.length) return false;
    const digits = (from: number, n: number): number => {
      let v = 0;
      for (let i = from; i < from + n; i++) {
        const d = b[i] - 0x30;
        if (d < 0 || d > 9) return -1;
        v = v * 10 + d;
      }
      return v;
    };
    const entries: Array<[number, number, number]> = [];
    for (let i = 0; i < count; i++) {
      const e = at + i * 20;
      const kind = b[e + 17];
      const offset = digits(e, 10);
      const gen = digits(e + 11, 5);
      if (offset < 0 || gen < 0 || b[e + 10] !== 0x20 || b[e + 16] !== 0x20 || (kind !== 0x6e && kind !== 0x66) || !WS.has(b[e + 18]) || !WS.has(b[e + 19])) return false;
      entries.push([offset, gen, kind]);
    }
    entries.forEach(([offset, gen, kind], i) => this.#put(start + i, kind === 0x6e ? { type: 'offset', offset, gen } : { type: 'free' }));
    lex.pos = at + count * 20;
    return true;
  }

  #readXrefStream(offset: number): PdfDict {
    const { value } = this.#readIndirectAt(offset);
    if (!(value instanceof PdfStream) || value.dict.name('Type') !== 'XRef') throw malformed(`startxref ${offset} points at neither an xref table nor an xref stream`, { offset });
    const d = value.dict;
    const w = d.get('W');
    const size = d.get('Size');
    if (!Array.isArray(w) || w.length !== 3 || !w.every((x) => typeof x === 'number' && x >= 0 && x <= 8) || typeof size !== 'number') throw malformed('the xref stream has a bad /W or /Size');
    const widths = w as number[];
    const index = d.get('Index');
    const ranges = Array.isArray(index) ? index as number[] : [0, size];
    const data = decodeStream(value);
    const rowLen = widths[0] + widths[1] + widths[2];
    let p = 0;
    const field = (width: number, dflt: number) => {
      if (width === 0) return dflt;
      let v = 0;
      for (let i = 0; i < width; i++) v = v * 256 + data[p++];
      return v;
    };
    for (let r = 0; r + 1 < ranges.length; r += 2) {
      const [start, count] = [ranges[r], ranges[r + 1]];
      for (let i = 0; i < count; i++) {
        if (p + rowLen > data.length) throw malformed('the xref stream is shorter than its /Index says');
        const type = field(widths[0], 1);
        const f2 = field(widths[1], 0);
        const f3 = field(widths[2], 0);
        if (type === 0) this.#put(start + i, { type: 'free' });
        else if (type === 1) this.#put(start + i, { type: 'offset', offset: f2, gen: f3 });
        else if (type === 2) this.#put(start + i, { type: 'compressed', stream: f2, index: f3 });
      }
    }
    return d;
  }

  #readIndirectAt(offset: number, expectNum?: number): { num: number; gen: number; value: PdfObject; end: number } {
    const lex = new PdfLexer(this.bytes, offset, (ref) => {
      const v = this.resolve(ref);
      return typeof v === 'number' ? v : undefined;
    });
    const num = lex.int();
    const gen = lex.int();
    lex.expect('obj');
    if (expectNum !== undefined && num !== expectNum) throw malformed(`the xref says object ${expectNum} is at offset ${offset}, but object ${num} is there`, { offset });
    const value = lex.parse();
    return { num, gen, value, end: lex.pos };
  }

  /** The object a reference (or a direct object) stands for; null for free or missing objects (s7.3.10). */
  resolve(obj: PdfObject | undefined): PdfObject {
    if (!(obj instanceof PdfRef)) return obj ?? null;
    return this.object(obj.num);
  }

  object(num: number): PdfObject {
    if (this.#cache.has(num)) return this.#cache.get(num)!;
    const entry = this.xref.get(num);
    let value: PdfObject = null;
    this.#cache.set(num, null); // guards against /Length loops
    if (entry?.type === 'offset') value = this.#readIndirectAt(entry.offset, num).value;
    else if (entry?.type === 'compressed') value = this.#fromObjectStream(entry.stream, num);
    this.#cache.set(num, value);
    return value;
  }

  #fromObjectStream(streamNum: number, num: number): PdfObject {
    let os = this.#objStreams.get(streamNum);
    if (!os) {
      const s = this.object(streamNum);
      if (!(s instanceof PdfStream) || s.dict.name('Type') !== 'ObjStm') throw malformed(`object ${num} is said to be in object stream ${streamNum}, which is not one`);
      const n = s.dict.get('N');
      const first = s.dict.get('First');
      if (typeof n !== 'number' || typeof first !== 'number') throw malformed(`object stream ${streamNum} has no /N or /First`);
      const data = decodeStream(s);
      const lex = new PdfLexer(data);
      const offsets = new Map<number, number>();
      for (let i = 0; i < n; i++) {
        const objNum = lex.int();
        offsets.set(objNum, lex.int());
      }
      os = { offsets, data, first };
      this.#objStreams.set(streamNum, os);
    }
    const at = os.offsets.get(num);
    if (at === undefined) throw malformed(`object ${num} is not in object stream ${streamNum}`);
    return new PdfLexer(os.data, os.first + at).parse();
  }

  dict(obj: PdfObject | undefined, what: string): PdfDict {
    const v = this.resolve(obj);
    if (v instanceof PdfDict) return v;
    if (v instanceof PdfStream) return v.dict;
    throw malformed(`${what} is not a dictionary`);
  }

  get catalogRef(): PdfRef {
    return this.trailer.get('Root') as PdfRef;
  }

  get catalog(): PdfDict {
    return this.dict(this.catalogRef, '/Root');
  }

  /** The page objects in order (s7.7.3), with inherited attributes resolved for MediaBox. */
  pages(): Array<{ ref: PdfRef; dict: PdfDict; mediaBox: number[] }> {
    const out: Array<{ ref: PdfRef; dict: PdfDict; mediaBox: number[] }> = [];
    const seen = new Set<number>();
    const walk = (ref: PdfObject | undefined, inheritedBox: number[] | undefined, depth: number) => {
      if (!(ref instanceof PdfRef)) throw malformed('a page tree node is not an indirect reference');
      if (seen.has(ref.num) || depth > 64) throw malformed('the page tree loops');
      seen.add(ref.num);
      const node = this.dict(ref, `page tree node ${ref.num}`);
      const box = mediaBoxOf(this.resolve(node.get('MediaBox'))) ?? inheritedBox;
      if (node.name('Type') === 'Pages') {
        const kids = this.resolve(node.get('Kids'));
        if (!Array.isArray(kids)) throw malformed(`page tree node ${ref.num} has no /Kids array`);
        for (const k of kids) walk(k, box, depth + 1);
      } else {
        out.push({ ref, dict: node, mediaBox: box ?? [0, 0, 612, 792] });
      }
    };
    walk(this.catalog.get('Pages'), undefined, 0);
    if (out.length === 0) throw malformed('the document has no pages');
    return out;
  }

  /** The number of pages: the page tree root's /Count (s7.7.3.2), counted by walking when it is unusable. */
  pageCount(): number {
    const root = this.catalog.get('Pages');
    const count = this.#countOf(root, 0, new Set());
    if (count === 0) throw malformed('the document has no pages');
    return count;
  }

  /**
   * Page `n` (1-based) found by descending through the /Count of each page tree node, so only the
   * nodes on the path to it are read (a 500-page document costs a few objects, not 500).
   */
  page(n: number): { ref: PdfRef; dict: PdfDict; mediaBox: number[] } {
    let ref: PdfObject | undefined = this.catalog.get('Pages');
    let box: number[] | undefined;
    let index = n - 1;
    const seen = new Set<number>();
    for (let depth = 0; ; depth++) {
      if (!(ref instanceof PdfRef)) throw malformed('a page tree node is not an indirect reference');
      if (seen.has(ref.num) || depth > 64) throw malformed('the page tree loops');
      seen.add(ref.num);
      const node = this.dict(ref, `page tree node ${ref.num}`);
      box = mediaBoxOf(this.resolve(node.get('MediaBox'))) ?? box;
      if (node.name('Type') !== 'Pages') {
        if (index !== 0) throw malformed(`page ${n} is not in the page tree`);
        return { ref, dict: node, mediaBox: box ?? [0, 0, 612, 792] };
      }
      const kids = this.resolve(node.get('Kids'));
      if (!Array.isArray(kids)) throw malformed(`page tree node ${ref.num} has no /Kids array`);
      // Kids are read from the nearer end: the last page (the default seal position) costs one kid.
      const total = this.#countOf(ref, depth, new Set());
      const fromEnd = index >= total / 2;
      let rest = fromEnd ? total - 1 - index : index;
      let next: PdfObject | undefined;
      for (let k = 0; k < kids.length; k++) {
        const kid = kids[fromEnd ? kids.length - 1 - k : k];
        const count = this.#countOf(kid, depth + 1, seen);
        if (rest < count) { next = kid; index = fromEnd ? count - 1 - rest : rest; break; }
        rest -= count;
      }
      if (next === undefined) throw malformed(`page ${n} is not in the page tree`);
      ref = next;
    }
  }

  /** Pages under a node: 1 for a page, /Count for an intermediate node (walked when /Count is missing). */
  #countOf(ref: PdfObject | undefined, depth: number, path: Set<number>): number {
    if (!(ref instanceof PdfRef)) throw malformed('a page tree node is not an indirect reference');
    if (path.has(ref.num) || depth > 64) throw malformed('the page tree loops');
    const node = this.dict(ref, `page tree node ${ref.num}`);
    if (node.name('Type') !== 'Pages') return 1;
    const count = this.resolve(node.get('Count'));
    if (typeof count === 'number' && Number.isInteger(count) && count >= 0) return count;
    const kids = this.resolve(node.get('Kids'));
    if (!Array.isArray(kids)) throw malformed(`page tree node ${ref.num} has no /Kids array`);
    const inner = new Set(path).add(ref.num);
    return kids.reduce((sum: number, kid) => sum + this.#countOf(kid, depth + 1, inner), 0);
  }

  /** Numbers of the objects written in the revision(s) after `length` bytes. */
  objectsWrittenAfter(length: number): number[] {
    const out: number[] = [];
    for (const [num, e] of this.xref) if (e.type === 'offset' && e.offset >= length) out.push(num);
    return out;
  }
}

function mediaBoxOf(obj: PdfObject): number[] | undefined {
  return Array.isArray(obj) && obj.length === 4 && obj.every((x) => typeof x === 'number' && Number.isFinite(x)) ? obj as number[] : undefined;
}

/** A name of regular characters only, written as it is (s7.3.5). */
const PLAIN_NAME = /^[A-Za-z0-9._*+-]*$/;

/** Serializes an object in PDF syntax (s7.3); streams are written by the caller. */
export function serialize(obj: PdfObject): string {
  if (obj === null) return 'null';
  if (obj === true) return 'true';
  if (obj === false) return 'false';
  if (typeof obj === 'number') {
    if (!Number.isFinite(obj)) throw new YinxinError('internal', 'a PDF number must be finite');
    return Number.isInteger(obj) ? String(obj) : obj.toFixed(4).replace(/\.?0+$/, '');
  }
  if (obj instanceof PdfName) {
    if (PLAIN_NAME.test(obj.name)) return `/${obj.name}`;
    return `/${Buffer.from(obj.name, 'latin1').toString('latin1').replace(/[^!-~]|[#()<>[\]{}/%]/g, (c) => `#${c.charCodeAt(0).toString(16).padStart(2, '0')}`)}`;
  }
  if (obj instanceof PdfString) return `<${Buffer.from(obj.bytes).toString('hex')}>`;
  if (obj instanceof PdfRef) return `${obj.num} ${obj.gen} R`;
  if (Array.isArray(obj)) return `[${obj.map(serialize).join(' ')}]`;
  if (obj instanceof PdfDict) return `<<${[...obj.map].map(([k, v]) => `${serialize(new PdfName(k))} ${serialize(v)}`).join(' ')}>>`;
  throw new YinxinError('internal', 'a stream cannot be serialized inline');
}

/** A text string (s7.9.2.2): PDFDocEncoding for ASCII, UTF-16BE with a BOM otherwise. */
export function textString(s: string): PdfString {
  if (/^[\x20-\x7e]*$/.test(s)) return new PdfString(new Uint8Array(Buffer.from(s, 'latin1')));
  const out = [0xfe, 0xff];
  for (let i = 0; i < s.length; i++) out.push(s.charCodeAt(i) >> 8, s.charCodeAt(i) & 0xff);
  return new PdfString(new Uint8Array(out));
}
