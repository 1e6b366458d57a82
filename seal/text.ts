/**
 * Finding text on a page, to place a seal beside it (ISO 32000-1 s9: text objects and operators;
 * s9.10 extraction of text content). A small content-stream interpreter tracks the graphics state
 * (q, Q, cm), the text state (Tf, Tc, Tw, Tz, TL, Ts) and positioning (BT, Td, TD, Tm, T*), shows
 * strings (Tj, TJ, ', ") glyph by glyph, and follows Form XObjects (Do). Each glyph gets its
 * Unicode text and its origin and advance in default user space.
 *
 * Supported: content streams unfiltered or FlateDecode; simple fonts (Type1, TrueType) with
 * StandardEncoding, WinAnsiEncoding, MacRomanEncoding or /Differences (common glyph names and
 * uniXXXX), or a /ToUnicode CMap; composite (Type0) fonts with a /ToUnicode CMap or a UCS-2 /
 * UTF-16 CMap (UniGB-UCS2-H, ...). Widths from /Widths or /W; the standard 14 fonts' widths built
 * in for Helvetica, Times and Courier. Not supported: CID fonts without /ToUnicode and with another
 * CMap (Identity-H alone names glyphs, not characters), Type3 fonts, text drawn as paths or images,
 * other stream filters. Unreadable content ends the search on that stream; it never fails a seal.
 */
import { decodeStream, PdfDict, PdfLexer, PdfName, PdfStream, PdfString, type PdfDocument, type PdfObject } from './pdf.ts';

type Matrix = [number, number, number, number, number, number];

export interface TextBox {
  page: number;
  /** In default user space (points): lower-left and upper-right corners. */
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

interface Glyph {
  text: string;
  x: number;
  y: number;
  /** End of the advance, in user space. */
  xEnd: number;
  yEnd: number;
  /** Font size in user space (height of the em square). */
  size: number;
}

interface Font {
  /** Bytes per code (1 for simple fonts, from the CMap's codespace for Type0). */
  codeLength: number;
  toUnicode(code: number): string;
  /** Glyph width in thousandths of text space. */
  width(code: number): number;
}

const IDENTITY: Matrix = [1, 0, 0, 1, 0, 0];

function multiply(a: Matrix, b: Matrix): Matrix {
  return [
    a[0] * b[0] + a[1] * b[2], a[0] * b[1] + a[1] * b[3],
    a[2] * b[0] + a[3] * b[2], a[2] * b[1] + a[3] * b[3],
    a[4] * b[0] + a[5] * b[2] + b[4], a[4] * b[1] + a[5] * b[3] + b[5],
  ];
}

function apply(m: Matrix, x: number, y: number): [number, number] {
  return [x * m[0] + y * m[2] + m[4], x * m[1] + y * m[3] + m[5]];
}

// ---------------------------------------------------------------- fonts

/** Widths of ASCII 32..126 in the standard 14 fonts (Adobe AFM files); other codes use 'default'. */
const HELVETICA = [278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556,
  1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556,
  333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584];
const TIMES = [250, 333, 408, 500, 500, 833, 778, 180, 333, 333, 500, 564, 250, 333, 250, 278, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 278, 278, 564, 564, 564, 444,
  921, 722, 667, 667, 722, 611, 556, 722, 722, 333, 389, 722, 611, 889, 722, 722, 556, 722, 667, 556, 611, 722, 722, 944, 722, 722, 611, 333, 278, 333, 469, 500,
  333, 444, 500, 444, 500, 444, 333, 500, 500, 278, 278, 500, 278, 778, 500, 500, 500, 500, 333, 389, 278, 500, 500, 722, 500, 500, 444, 480, 200, 480, 541];

function standardWidths(baseFont: string): ((code: number) => number) | undefined {
  const name = baseFont.replace(/^[A-Z]{6}\+/, '');
  if (/^Courier/.test(name)) return () => 600;
  const table = /^(Helvetica|Arial)/.test(name) ? HELVETICA : /^Times/.test(name) ? TIMES : undefined;
  return table ? (code) => (code >= 32 && code <= 126 ? table[code - 32] : 500) : undefined;
}

const GLYPH_NAMES: Record<string, string> = {
  space: ' ', exclam: '!', quotedbl: '"', numbersign: '#', dollar: '$', percent: '%', ampersand: '&', quotesingle: "'", quoteright: '\u2019',
  parenleft: '(', parenright: ')', asterisk: '*', plus: '+', comma: ',', hyphen: '-', period: '.', slash: '/', colon: ':', semicolon: ';',
  less: '<', equal: '=', greater: '>', question: '?', at: '@', bracketleft: '[', backslash: '\\', bracketright: ']', asciicircum: '^',
  underscore: '_', grave: '`', quoteleft: '\u2018', braceleft: '{', bar: '|', braceright: '}', asciitilde: '~', bullet: '\u2022',
  endash: '\u2013', emdash: '\u2014', quotedblleft: '\u201c', quotedblright: '\u201d',
  zero: '0', one: '1', two: '2', three: '3', four: '4', five: '5', six: '6', seven: '7', eight: '8', nine: '9',
};

function glyphNameToUnicode(name: string): string | undefined {
  if (/^[A-Za-z]$/.test(name)) return name;
  if (name in GLYPH_NAMES) return GLYPH_NAMES[name];
  const uni = /^uni([0-9A-Fa-f]{4})$/.exec(name) ?? /^u([0-9A-Fa-f]{4,6})$/.exec(name);
  if (uni) return String.fromCodePoint(parseInt(uni[1], 16));
  return undefined;
}

const decoders: Record<string, TextDecoder> = {
  WinAnsiEncoding: new TextDecoder('windows-1252'),
  MacRomanEncoding: new TextDecoder('macintosh'),
};

function baseEncoding(name: string | undefined): (code: number) => string {
  if (name === 'MacRomanEncoding') return (code) => decoders.MacRomanEncoding.decode(new Uint8Array([code]));
  const standard = name !== 'WinAnsiEncoding';
  return (code) => {
    // StandardEncoding differs from WinAnsi in ASCII only at the two quotes (Annex D.2).
    if (standard && code === 0x27) return '\u2019';
    if (standard && code === 0x60) return '\u2018';
    return decoders.WinAnsiEncoding.decode(new Uint8Array([code]));
  };
}

/** A ToUnicode CMap (s9.10.3): codespace ranges, bfchar and bfrange. */
function parseToUnicode(data: Uint8Array): { map: Map<number, string>; codeLength: number | undefined } {
  const text = Buffer.from(data).toString('latin1');
  const map = new Map<number, string>();
  const utf16 = (hex: string) => {
    const b = Buffer.from(hex.length % 2 ? `${hex}0` : hex, 'hex');
    let s = '';
    for (let i = 0; i + 1 < b.length; i += 2) s += String.fromCharCode(b.readUInt16BE(i));
    return s;
  };
  let codeLength: number | undefined;
  for (const block of text.matchAll(/begincodespacerange([\s\S]*?)endcodespacerange/g)) {
    const first = /<([0-9A-Fa-f]+)>/.exec(block[1]);
    if (first) codeLength = Math.ceil(first[1].length / 2);
  }
  for (const block of text.matchAll(/beginbfchar([\s\S]*?)endbfchar/g)) {
    for (const m of block[1].matchAll(/<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]*)>/g)) map.set(parseInt(m[1], 16), utf16(m[2]));
  }
  for (const block of text.matchAll(/beginbfrange([\s\S]*?)endbfrange/g)) {
    for (const m of block[1].matchAll(/<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*(<[0-9A-Fa-f]*>|\[[^\]]*\])/g)) {
      const [lo, hi] = [parseInt(m[1], 16), parseInt(m[2], 16)];
      if (hi < lo || hi - lo > 0xffff) continue;
      if (m[3].startsWith('[')) {
        [...m[3].matchAll(/<([0-9A-Fa-f]*)>/g)].forEach((d, i) => { if (lo + i <= hi) map.set(lo + i, utf16(d[1])); });
      } else {
        const start = utf16(m[3].slice(1, -1));
        const last = start.charCodeAt(start.length - 1);
        for (let c = lo; c <= hi; c++) map.set(c, start.slice(0, -1) + String.fromCharCode(last + (c - lo)));
      }
    }
  }
  return { map, codeLength };
}

function num(v: PdfObject | undefined, dflt: number): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : dflt;
}

function loadFont(doc: PdfDocument, obj: PdfObject | undefined): Font {
  const unknown: Font = { codeLength: 1, toUnicode: () => '\ufffd', width: () => 500 };
  const font = doc.resolve(obj);
  if (!(font instanceof PdfDict)) return unknown;
  const subtype = font.name('Subtype');
  const toUnicodeStream = doc.resolve(font.get('ToUnicode'));
  const toUnicode = toUnicodeStream instanceof PdfStream ? parseToUnicode(decodeStream(toUnicodeStream)) : undefined;

  if (subtype === 'Type0') {
    const encoding = font.name('Encoding') ?? '';
    const descendants = doc.resolve(font.get('DescendantFonts'));
    const cidFont = Array.isArray(descendants) ? doc.resolve(descendants[0]) : undefined;
    const widths = new Map<number, number>();
    let dw = 1000;
    if (cidFont instanceof PdfDict) {
      dw = num(doc.resolve(cidFont.get('DW')), 1000);
      const w = doc.resolve(cidFont.get('W'));
      if (Array.isArray(w)) {
        // s9.7.4.3: c [w1 w2 ...] | c_first c_last w
        for (let i = 0; i < w.length && widths.size < 65536;) {
          const first = doc.resolve(w[i]);
          const next = doc.resolve(w[i + 1]);
          if (typeof first !== 'number') break;
          if (Array.isArray(next)) {
            next.forEach((x, k) => widths.set(first + k, num(doc.resolve(x), dw)));
            i += 2;
          } else {
            const last = next;
            const width = doc.resolve(w[i + 2]);
            if (typeof last !== 'number' || typeof width !== 'number') break;
            for (let c = first; c <= Math.min(last, first + 65535); c++) widths.set(c, width);
            i += 3;
          }
        }
      }
    }
    const identity = encoding === 'Identity-H' || encoding === 'Identity-V';
    const ucs2 = /^Uni\w+-(UCS2|UTF16)-[HV]$/.test(encoding);
    return {
      codeLength: toUnicode?.codeLength ?? 2,
      toUnicode: (code) => toUnicode?.map.get(code) ?? (ucs2 ? String.fromCharCode(code) : '\ufffd'),
      width: (code) => (identity ? widths.get(code) ?? dw : dw),
    };
  }

  const first = num(doc.resolve(font.get('FirstChar')), 0);
  const widthArray = doc.resolve(font.get('Widths'));
  const descriptor = doc.resolve(font.get('FontDescriptor'));
  const missing = descriptor instanceof PdfDict ? num(doc.resolve(descriptor.get('MissingWidth')), 0) : 0;
  const standard = standardWidths(font.name('BaseFont') ?? '');
  const width = (code: number) => {
    if (Array.isArray(widthArray) && code >= first && code - first < widthArray.length) return num(doc.resolve(widthArray[code - first]), missing || 500);
    return standard?.(code) ?? (missing || 500);
  };
  const enc = doc.resolve(font.get('Encoding'));
  let base = baseEncoding(enc instanceof PdfName ? enc.name : undefined);
  const differences = new Map<number, string>();
  if (enc instanceof PdfDict) {
    base = baseEncoding(enc.name('BaseEncoding'));
    const diffs = doc.resolve(enc.get('Differences'));
    if (Array.isArray(diffs)) {
      let code = 0;
      for (const d of diffs) {
        if (typeof d === 'number') code = d;
        else if (d instanceof PdfName) {
          const u = glyphNameToUnicode(d.name);
          if (u !== undefined) differences.set(code, u);
          code++;
        }
      }
    }
  }
  return {
    codeLength: 1,
    toUnicode: (code) => toUnicode?.map.get(code) ?? differences.get(code) ?? base(code),
    width,
  };
}

// ---------------------------------------------------------------- interpreter

interface TextState {
  ctm: Matrix;
  font?: Font;
  fontSize: number;
  charSpacing: number;
  wordSpacing: number;
  scale: number;
  leading: number;
  rise: number;
}

const MAX_DEPTH = 8;
const MAX_GLYPHS = 2_000_000;

class PageText {
  readonly glyphs: Glyph[] = [];
  readonly #doc: PdfDocument;
  readonly #fonts = new Map<PdfObject, Font>();

  constructor(doc: PdfDocument) {
    this.#doc = doc;
  }

  run(content: Uint8Array, resources: PdfDict | undefined, ctm: Matrix, depth: number): void {
    const doc = this.#doc;
    const lex = new PdfLexer(content);
    const b = content;
    let operands: PdfObject[] = [];
    let gs: TextState = { ctm, fontSize: 0, charSpacing: 0, wordSpacing: 0, scale: 1, leading: 0, rise: 0 };
    const stack: TextState[] = [];
    let tm: Matrix = IDENTITY;
    let tlm: Matrix = IDENTITY;
    const n = (i: number) => num(operands[i], 0);
    const matrix = (): Matrix => operands.slice(-6).map((x) => num(x, 0)).concat([0, 0, 0, 0, 0, 0]).slice(0, 6) as Matrix;
    const moveLine = (tx: number, ty: number) => { tlm = multiply([1, 0, 0, 1, tx, ty], tlm); tm = tlm; };
    const show = (s: PdfString) => {
      const font = gs.font;
      if (!font) return;
      const bytes = s.bytes;
      for (let i = 0; i + font.codeLength <= bytes.length && this.glyphs.length < MAX_GLYPHS; i += font.codeLength) {
        let code = 0;
        for (let k = 0; k < font.codeLength; k++) code = code * 256 + bytes[i + k];
        const trm = multiply(multiply([gs.fontSize * gs.scale, 0, 0, gs.fontSize, 0, gs.rise], tm), gs.ctm);
        const advance = ((font.width(code) / 1000) * gs.fontSize + gs.charSpacing + (font.codeLength === 1 && code === 32 ? gs.wordSpacing : 0)) * gs.scale;
        const [x, y] = apply(trm, 0, 0);
        tm = multiply([1, 0, 0, 1, advance, 0], tm);
        const [xEnd, yEnd] = apply(multiply(tm, gs.ctm), 0, gs.rise);
        this.glyphs.push({ text: font.toUnicode(code), x, y, xEnd, yEnd, size: Math.hypot(trm[2], trm[3]) });
      }
    };
    const fontOf = (name: PdfObject | undefined): Font | undefined => {
      if (!(name instanceof PdfName)) return undefined;
      const fonts = doc.resolve(resources?.get('Font'));
      const ref = fonts instanceof PdfDict ? fonts.get(name.name) : undefined;
      if (ref === undefined) return undefined;
      let font = this.#fonts.get(ref);
      if (!font) {
        try {
          font = loadFont(doc, ref);
        } catch {
          font = { codeLength: 1, toUnicode: () => '\ufffd', width: () => 500 };
        }
        this.#fonts.set(ref, font);
      }
      return font;
    };

    while (this.glyphs.length < MAX_GLYPHS) {
      lex.skipWs();
      if (lex.pos >= b.length) break;
      const c = b[lex.pos];
      if (c === 0x2f || c === 0x28 || c === 0x3c || c === 0x5b || c === 0x2b || c === 0x2d || c === 0x2e || (c >= 0x30 && c <= 0x39)) {
        operands.push(lex.parse());
        if (operands.length > 64) operands = operands.slice(-64);
        continue;
      }
      if (c === 0x5d || c === 0x3e || c === 0x7b || c === 0x7d || c === 0x29) { lex.pos++; continue; }
      const op = lex.word();
      switch (op) {
        case 'q': stack.push({ ...gs }); if (stack.length > 256) return; break;
        case 'Q': gs = stack.pop() ?? gs; break;
        case 'cm': if (operands.length >= 6) gs.ctm = multiply(matrix(), gs.ctm); break;
        case 'BT': tm = IDENTITY; tlm = IDENTITY; break;
        case 'Tf': gs.font = fontOf(operands[0]); gs.fontSize = n(1); break;
        case 'Tc': gs.charSpacing = n(0); break;
        case 'Tw': gs.wordSpacing = n(0); break;
        case 'Tz': gs.scale = n(0) / 100; break;
        case 'TL': gs.leading = n(0); break;
        case 'Ts': gs.rise = n(0); break;
        case 'Td': moveLine(n(0), n(1)); break;
        case 'TD': gs.leading = -n(1); moveLine(n(0), n(1)); break;
        case 'Tm': if (operands.length >= 6) { tlm = matrix(); tm = tlm; } break;
        case 'T*': moveLine(0, -gs.leading); break;
        case 'Tj': if (operands[0] instanceof PdfString) show(operands[0]); break;
        case "'": moveLine(0, -gs.leading); if (operands[0] instanceof PdfString) show(operands[0]); break;
        case '"': gs.wordSpacing = n(0); gs.charSpacing = n(1); moveLine(0, -gs.leading); if (operands[2] instanceof PdfString) show(operands[2]); break;
        case 'TJ': {
          const arr = operands[0];
          if (!Array.isArray(arr)) break;
          for (const item of arr) {
            if (item instanceof PdfString) show(item);
            else if (typeof item === 'number') tm = multiply([1, 0, 0, 1, (-item / 1000) * gs.fontSize * gs.scale, 0], tm);
          }
          break;
        }
        case 'Do': if (depth < MAX_DEPTH) this.#form(operands[0], resources, gs.ctm, depth); break;
        case 'BI': {
          // An inline image (s8.9.7): skip its binary data, from ID to EI.
          const text = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
          const id = text.indexOf('ID', lex.pos, 'latin1');
          const ei = id < 0 ? -1 : findEI(b, id + 3);
          if (ei < 0) return;
          lex.pos = ei + 2;
          break;
        }
        case '': lex.pos++; break;
      }
      operands = [];
    }
  }

  #form(name: PdfObject | undefined, resources: PdfDict | undefined, ctm: Matrix, depth: number): void {
    if (!(name instanceof PdfName)) return;
    const doc = this.#doc;
    const xobjects = doc.resolve(resources?.get('XObject'));
    const form = xobjects instanceof PdfDict ? doc.resolve(xobjects.get(name.name)) : undefined;
    if (!(form instanceof PdfStream) || form.dict.name('Subtype') !== 'Form') return;
    const m = doc.resolve(form.dict.get('Matrix'));
    const matrix = Array.isArray(m) && m.length === 6 && m.every((x) => typeof x === 'number') ? m as Matrix : IDENTITY;
    const own = doc.resolve(form.dict.get('Resources'));
    const content = contentOf(form);
    if (content) this.run(content, own instanceof PdfDict ? own : resources, multiply(matrix, ctm), depth + 1);
  }
}

function findEI(b: Uint8Array, from: number): number {
  for (let i = from; i + 1 < b.length; i++) {
    if (b[i] === 0x45 && b[i + 1] === 0x49 && (i === 0 || b[i - 1] <= 0x20) && (i + 2 >= b.length || b[i + 2] <= 0x20)) return i;
  }
  return -1;
}

/** A content stream's decoded bytes, or undefined when its filter is not supported. */
function contentOf(stream: PdfStream): Uint8Array | undefined {
  try {
    return decodeStream(stream);
  } catch {
    return undefined;
  }
}

/** Page /Resources, inherited from the page tree (s7.7.3.4). */
function resourcesOf(doc: PdfDocument, page: PdfDict): PdfDict | undefined {
  let node: PdfDict | undefined = page;
  for (let depth = 0; node && depth < 64; depth++) {
    const r = doc.resolve(node.get('Resources'));
    if (r instanceof PdfDict) return r;
    const parent = doc.resolve(node.get('Parent'));
    node = parent instanceof PdfDict ? parent : undefined;
  }
  return undefined;
}

/** The glyphs of one page in content order. */
export function pageGlyphs(doc: PdfDocument, page: PdfDict): Glyph[] {
  const contents = doc.resolve(page.get('Contents'));
  const streams = (Array.isArray(contents) ? contents.map((c) => doc.resolve(c)) : [contents]).filter((s): s is PdfStream => s instanceof PdfStream);
  const parts: Uint8Array[] = [];
  for (const s of streams) {
    const data = contentOf(s);
    if (data) parts.push(data, new Uint8Array([0x0a]));
  }
  const text = new PageText(doc);
  try {
    text.run(new Uint8Array(Buffer.concat(parts)), resourcesOf(doc, page), IDENTITY, 0);
  } catch {
    // Unreadable content: the glyphs read so far are all this page offers.
  }
  return text.glyphs;
}

/**
 * The first occurrence of `needle` on the document's pages, white space ignored on both sides
 * (layout often positions words instead of writing spaces). The box spans the matched glyphs.
 */
export function findText(doc: PdfDocument, needle: string, onlyPage?: number): TextBox | undefined {
  const wanted = [...needle.replace(/\s+/g, '')];
  if (wanted.length === 0) return undefined;
  const pages = doc.pages();
  for (const [index, page] of pages.entries()) {
    if (onlyPage !== undefined && index + 1 !== onlyPage) continue;
    const glyphs = pageGlyphs(doc, page.dict).flatMap((g) => [...g.text.replace(/\s+/g, '')].map((ch) => ({ ch, g })));
    for (let i = 0; i + wanted.length <= glyphs.length; i++) {
      let k = 0;
      while (k < wanted.length && glyphs[i + k].ch === wanted[k]) k++;
      if (k < wanted.length) continue;
      const matched = glyphs.slice(i, i + wanted.length).map((x) => x.g);
      const xs = matched.flatMap((g) => [g.x, g.xEnd]);
      const ys = matched.flatMap((g) => [g.y, g.yEnd]);
      const size = Math.max(...matched.map((g) => g.size));
      return { page: index + 1, x0: Math.min(...xs), y0: Math.min(...ys) - 0.2 * size, x1: Math.max(...xs), y1: Math.max(...ys) + 0.8 * size };
    }
  }
  return undefined;
}
