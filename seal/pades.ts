/**
 * PAdES baseline B-T (ETSI EN 319 142-1 s5.3, s6.3) written as an incremental update
 * (ISO 32000-1 s7.5.6): the original bytes are kept verbatim and new objects, a new
 * cross-reference section and trailer with /Prev are appended, so every earlier signature stays
 * valid. The update holds:
 *   - the signature dictionary (/Filter /Adobe.PPKLite /SubFilter /ETSI.CAdES.detached,
 *     /ByteRange, /Contents placeholder sized for the CMS, /M), s12.8.1;
 *   - a signature field that is also its widget annotation, with a visible appearance (the red
 *     seal drawn by appearance.ts, or an uploaded JPEG), on the chosen page, s12.7.4.5;
 *   - the page again with the widget added to /Annots, and the AcroForm with the field added and
 *     /SigFlags 3 (SignaturesExist | AppendOnly), s12.7.2;
 *   - a classic xref table, or an xref stream when the original's last section is one.
 * The CMS (cms.ts) has signing-certificate-v2, no signing-time (s5.4.3: /M carries the claimed
 * time) and the signature-time-stamp.
 */
import type { Clock } from '../common/clock.ts';
import { YinxinError } from '../common/errors.ts';
import { SEAL_FONT, sealAppearanceStream } from './appearance.ts';
import { appendUpdate, writeIncrement, type NewObject } from './increment.ts';
import { pngToPdfImage } from './png.ts';
import { findText, type TextBox } from './text.ts';
import { appendDss, certificatesOfSignature, collectValidationData, type ValidationDataSource } from './ltv.ts';
import { buildSignedData, digest, sealHash, type SealCredential, type TimeStamper } from './cms.ts';
import { PdfDict, PdfDocument, PdfName, PdfRef, PdfStream, PdfString, serialize, textString, type PdfObject } from './pdf.ts';

export interface SealPlacement {
  /** 1-based page number (default: the last page). */
  page?: number;
  /** Lower-left corner of the seal, in points from the page's lower-left corner (default: bottom right). */
  x?: number;
  y?: number;
  /** Side of the square seal in points (default 120, about 42 mm). */
  size?: number;
  /**
   * Beside text instead of at x, y: the seal's left edge at the end of the text's first occurrence
   * (on `page` if given, else the first page that has it), centred on its line, moved by `offset`
   * points and kept inside the page (text.ts says which fonts can be searched).
   */
  anchor?: { text: string; offset?: { x?: number; y?: number } };
}

export type SealImage =
  | { kind: 'drawn'; organization: string; sealName: string }
  /** A baseline JPEG (DCTDecode passes it through unchanged). */
  | { kind: 'jpeg'; bytes: Uint8Array }
  /** An 8-bit PNG (png.ts): FlateDecode, alpha as an /SMask. */
  | { kind: 'png'; bytes: Uint8Array };

export interface PadesInput extends SealCredential {
  timeStamper: TimeStamper;
  clock: Clock;
  image: SealImage;
  placement?: SealPlacement;
  /** Shown by readers as the signer's name, reason and location (s12.8.1 table 252). */
  name?: string;
  reason?: string;
  location?: string;
  /** Bytes reserved for the CMS in /Contents (default: the certificates' size plus 8 KiB). */
  reserve?: number;
  /** B-LT adds a second incremental update with the DSS (ltv.ts); it needs `validationData`. Default B-T. */
  level?: PadesLevel;
  validationData?: ValidationDataSource;
}

export type PadesLevel = 'B-T' | 'B-LT';

export interface PadesResult {
  pdf: Uint8Array;
  /** The digest the seal signs (over the byte ranges), hex, and its algorithm. */
  documentDigest: string;
  hash: string;
  fieldName: string;
  byteRange: [number, number, number, number];
  level: PadesLevel;
}

const BYTE_RANGE_PLACEHOLDER = '[0 ********** ********** **********]';

/** s7.9.4: D:YYYYMMDDHHmmSS+00'00' in UTC. */
export function pdfDate(d: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `D:${p(d.getUTCFullYear(), 4)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}+00'00'`;
}

/** Width and height of a baseline or progressive JPEG from its SOF marker. */
export function jpegSize(bytes: Uint8Array): { width: number; height: number; components: number } {
  if (bytes[0] !== 0xff || bytes[1] !== 0xd8) throw new YinxinError('validation-failed', 'the seal image is not a JPEG', { field: 'image' });
  let i = 2;
  while (i + 9 < bytes.length) {
    if (bytes[i] !== 0xff) { i++; continue; }
    const marker = bytes[i + 1];
    const len = (bytes[i + 2] << 8) | bytes[i + 3];
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return { height: (bytes[i + 5] << 8) | bytes[i + 6], width: (bytes[i + 7] << 8) | bytes[i + 8], components: bytes[i + 9] };
    }
    i += 2 + len;
  }
  throw new YinxinError('validation-failed', 'the seal image JPEG has no frame header', { field: 'image' });
}

/** Draws image /Im1 centred in the size x size box, its aspect ratio kept. */
function drawImage(width: number, height: number, size: number): string {
  const scale = size / Math.max(width, height);
  const [w, h] = [width * scale, height * scale];
  return `q ${serialize(w)} 0 0 ${serialize(h)} ${serialize((size - w) / 2)} ${serialize((size - h) / 2)} cm /Im1 Do Q`;
}

/** Signature field names already used in the AcroForm (to pick a fresh one). */
function fieldNames(doc: PdfDocument, fields: PdfObject[]): Set<string> {
  const names = new Set<string>();
  for (const f of fields) {
    const d = doc.resolve(f);
    if (d instanceof PdfDict) {
      const t = d.get('T');
      if (t instanceof PdfString) names.add(t.text());
    }
  }
  return names;
}

/**
 * Seals `pdf` and returns the new file: the original bytes followed by one incremental update.
 * Throws 'bad-request' (details.reason 'pdf-malformed' | 'pdf-encrypted'), 'validation-failed'
 * for a bad placement, 'time-not-available' when the TSA fails. Nothing is returned half-written.
 */
export async function sealPdf(pdf: Uint8Array, input: PadesInput): Promise<PadesResult> {
  const level = input.level ?? 'B-T';
  if (level !== 'B-T' && level !== 'B-LT') throw new YinxinError('validation-failed', 'level must be B-T or B-LT', { field: 'level' });
  if (level === 'B-LT' && !input.validationData) throw new YinxinError('config-invalid', 'B-LT sealing needs a source of OCSP responses and CRLs');
  const doc = PdfDocument.parse(pdf);
  const pageCount = doc.pageCount();
  const anchor = input.placement?.anchor;
  const size = input.placement?.size ?? 120;
  if (!(size >= 20 && size <= 600)) throw new YinxinError('validation-failed', 'the seal size must be 20..600 points', { field: 'size' });
  let found: TextBox | undefined;
  if (anchor !== undefined) {
    if (typeof anchor?.text !== 'string' || anchor.text.trim() === '' || anchor.text.length > 200) throw new YinxinError('validation-failed', 'anchor.text must be 1..200 characters', { field: 'anchor' });
    if (input.placement?.x !== undefined || input.placement?.y !== undefined) throw new YinxinError('validation-failed', 'give either x and y or an anchor, not both', { field: 'anchor' });
    found = findText(doc, anchor.text, input.placement?.page);
    if (!found) {
      throw new YinxinError('validation-failed', `the anchor text "${anchor.text}" was not found${input.placement?.page ? ` on page ${input.placement.page}` : ''} (text in CID fonts without /ToUnicode, Type3 fonts, paths or images cannot be searched)`, { field: 'anchor', reason: 'anchor-not-found' });
    }
  }
  const pageNo = found?.page ?? input.placement?.page ?? pageCount;
  if (!Number.isInteger(pageNo) || pageNo < 1 || pageNo > pageCount) {
    throw new YinxinError('validation-failed', `page ${pageNo} does not exist (the document has ${pageCount})`, { field: 'page', pages: pageCount });
  }
  const page = doc.page(pageNo);
  const [bx0, by0, bx1, by1] = page.mediaBox;
  let x = input.placement?.x ?? Math.max(bx0, bx1 - size - 72);
  let y = input.placement?.y ?? Math.max(by0, by0 + 72);
  if (found) {
    const dx = Number(anchor?.offset?.x ?? 0);
    const dy = Number(anchor?.offset?.y ?? 0);
    x = Math.min(Math.max(found.x1 + dx, bx0), bx1 - size);
    y = Math.min(Math.max((found.y0 + found.y1) / 2 - size / 2 + dy, by0), by1 - size);
  }
  if (!Number.isFinite(x) || !Number.isFinite(y) || x < bx0 || y < by0 || x + size > bx1 || y + size > by1) {
    throw new YinxinError('validation-failed', `the seal (${x},${y} size ${size}) does not fit on page ${pageNo} (${page.mediaBox.join(' ')})`, { field: 'placement' });
  }

  const catalog = doc.catalog;
  const acroFormEntry = catalog.get('AcroForm');
  const acroForm = acroFormEntry === undefined ? new PdfDict() : doc.dict(acroFormEntry, '/AcroForm').clone();
  const oldFields = doc.resolve(acroForm.get('Fields'));
  const fields = Array.isArray(oldFields) ? [...oldFields] : [];
  const used = fieldNames(doc, fields);
  let n = 1;
  while (used.has(`Seal${n}`)) n++;
  const fieldName = `Seal${n}`;

  let next = doc.size;
  const alloc = () => new PdfRef(next++, 0);
  const objects: NewObject[] = [];
  const sigRef = alloc();
  const widgetRef = alloc();
  const apRef = alloc();

  // Appearance: a Form XObject the size of the widget.
  const bbox = [0, 0, size, size];
  const apResources = new PdfDict();
  let apContent: string;
  if (input.image.kind === 'drawn') {
    const fontRef = alloc();
    const cidFontRef = alloc();
    const descriptorRef = alloc();
    objects.push({ num: descriptorRef.num, gen: 0, body: serialize(new PdfDict([
      ['Type', new PdfName('FontDescriptor')], ['FontName', new PdfName('STSong-Light')], ['Flags', 6],
      ['FontBBox', [-25, -254, 1000, 880]], ['ItalicAngle', 0], ['Ascent', 880], ['Descent', -120], ['CapHeight', 880], ['StemV', 93],
    ])) });
    objects.push({ num: cidFontRef.num, gen: 0, body: serialize(new PdfDict([
      ['Type', new PdfName('Font')], ['Subtype', new PdfName('CIDFontType0')], ['BaseFont', new PdfName('STSong-Light')],
      ['CIDSystemInfo', new PdfDict([['Registry', new PdfString(Buffer.from('Adobe'))], ['Ordering', new PdfString(Buffer.from('GB1'))], ['Supplement', 2]])],
      ['FontDescriptor', descriptorRef], ['DW', 1000],
    ])) });
    objects.push({ num: fontRef.num, gen: 0, body: serialize(new PdfDict([
      ['Type', new PdfName('Font')], ['Subtype', new PdfName('Type0')], ['BaseFont', new PdfName('STSong-Light')],
      ['Encoding', new PdfName('UniGB-UCS2-H')], ['DescendantFonts', [cidFontRef]],
    ])) });
    apResources.set('Font', new PdfDict([[SEAL_FONT, fontRef]]));
    apContent = sealAppearanceStream({ organization: input.image.organization, sealName: input.image.sealName, size });
  } else if (input.image.kind === 'png') {
    const image = pngToPdfImage(input.image.bytes);
    const imageRef = alloc();
    const dict = new PdfDict([
      ['Type', new PdfName('XObject')], ['Subtype', new PdfName('Image')], ['Width', image.width], ['Height', image.height],
      ['ColorSpace', new PdfName(image.colorSpace)], ['BitsPerComponent', 8], ['Filter', new PdfName('FlateDecode')],
    ]);
    if (image.predictor) {
      dict.set('DecodeParms', new PdfDict([['Predictor', 15], ['Colors', image.colorSpace === 'DeviceGray' ? 1 : 3], ['BitsPerComponent', 8], ['Columns', image.width]]));
    }
    if (image.alpha) {
      const maskRef = alloc();
      objects.push({ num: maskRef.num, gen: 0, body: { dict: new PdfDict([
        ['Type', new PdfName('XObject')], ['Subtype', new PdfName('Image')], ['Width', image.width], ['Height', image.height],
        ['ColorSpace', new PdfName('DeviceGray')], ['BitsPerComponent', 8], ['Filter', new PdfName('FlateDecode')],
      ]), data: image.alpha } });
      dict.set('SMask', maskRef);
    }
    objects.push({ num: imageRef.num, gen: 0, body: { dict, data: image.color } });
    apResources.set('XObject', new PdfDict([['Im1', imageRef]]));
    apContent = drawImage(image.width, image.height, size);
  } else {
    const { width, height, components } = jpegSize(input.image.bytes);
    const imageRef = alloc();
    objects.push({ num: imageRef.num, gen: 0, body: { dict: new PdfDict([
      ['Type', new PdfName('XObject')], ['Subtype', new PdfName('Image')], ['Width', width], ['Height', height],
      ['ColorSpace', new PdfName(components === 1 ? 'DeviceGray' : components === 4 ? 'DeviceCMYK' : 'DeviceRGB')],
      ['BitsPerComponent', 8], ['Filter', new PdfName('DCTDecode')],
    ]), data: input.image.bytes } });
    apResources.set('XObject', new PdfDict([['Im1', imageRef]]));
    apContent = drawImage(width, height, size);
  }
  objects.push({ num: apRef.num, gen: 0, body: { dict: new PdfDict([
    ['Type', new PdfName('XObject')], ['Subtype', new PdfName('Form')], ['BBox', bbox], ['Resources', apResources],
  ]), data: new Uint8Array(Buffer.from(apContent, 'latin1')) } });

  // The signature field merged with its widget (s12.7.3.1): Print + Locked (F 132).
  objects.push({ num: widgetRef.num, gen: 0, body: serialize(new PdfDict([
    ['Type', new PdfName('Annot')], ['Subtype', new PdfName('Widget')], ['FT', new PdfName('Sig')], ['T', textString(fieldName)],
    ['V', sigRef], ['P', page.ref], ['Rect', [x, y, x + size, y + size]], ['F', 132], ['AP', new PdfDict([['N', apRef]])],
  ])) });

  // The page with the widget in /Annots (an indirect /Annots array is rewritten in place of its own object).
  const annotsEntry = page.dict.get('Annots');
  const annots = doc.resolve(annotsEntry);
  const newAnnots = [...(Array.isArray(annots) ? annots : []), widgetRef];
  if (annotsEntry instanceof PdfRef && Array.isArray(annots)) {
    objects.push({ num: annotsEntry.num, gen: annotsEntry.gen, body: serialize(newAnnots) });
  } else {
    const pageDict = page.dict.clone().set('Annots', newAnnots);
    const pageObj = doc.resolve(page.ref);
    if (pageObj instanceof PdfStream) throw new YinxinError('bad-request', 'a page object is a stream', { reason: 'pdf-malformed' });
    objects.push({ num: page.ref.num, gen: page.ref.gen, body: serialize(pageDict) });
  }

  // The AcroForm with the new field; SigFlags 3 = SignaturesExist | AppendOnly (s12.7.2 table 219).
  acroForm.set('Fields', [...fields, widgetRef]).set('SigFlags', 3);
  if (acroFormEntry instanceof PdfRef) {
    objects.push({ num: acroFormEntry.num, gen: acroFormEntry.gen, body: serialize(acroForm) });
  } else {
    const acroRef = alloc();
    objects.push({ num: acroRef.num, gen: 0, body: serialize(acroForm) });
    objects.push({ num: doc.catalogRef.num, gen: doc.catalogRef.gen, body: serialize(catalog.clone().set('AcroForm', acroRef)) });
  }

  // The signature dictionary, with placeholders patched once the offsets are known.
  const certBytes = input.certificate.length + input.chain.reduce((a, c) => a + c.length, 0);
  const reserve = input.reserve ?? certBytes + 8192;
  const sigDict = new PdfDict([
    ['Type', new PdfName('Sig')], ['Filter', new PdfName('Adobe.PPKLite')], ['SubFilter', new PdfName('ETSI.CAdES.detached')],
    ['ByteRange', new PdfName('__BYTERANGE__')], ['Contents', new PdfName('__CONTENTS__')],
    ['M', new PdfString(Buffer.from(pdfDate(input.clock.now()), 'latin1'))],
  ]);
  if (input.name) sigDict.set('Name', textString(input.name));
  if (input.reason) sigDict.set('Reason', textString(input.reason));
  if (input.location) sigDict.set('Location', textString(input.location));
  const sigText = serialize(sigDict)
    .replace('/__BYTERANGE__', BYTE_RANGE_PLACEHOLDER)
    .replace('/__CONTENTS__', `<${'0'.repeat(reserve * 2)}>`);
  objects.push({ num: sigRef.num, gen: 0, body: sigText });

  const update = writeIncrement(doc, objects, next);
  const out = appendUpdate(pdf, update);

  // Find the placeholders in the update only (never in the original bytes).
  const buf = Buffer.from(out.buffer, out.byteOffset, out.byteLength);
  const brAt = buf.indexOf(BYTE_RANGE_PLACEHOLDER, pdf.length, 'latin1');
  const contentsAt = buf.indexOf(`/Contents <${'0'.repeat(64)}`, pdf.length, 'latin1') + '/Contents '.length;
  if (brAt < 0 || contentsAt < '/Contents '.length) throw new YinxinError('internal', 'signature placeholders not found');
  const contentsEnd = contentsAt + reserve * 2 + 2;
  const byteRange: [number, number, number, number] = [0, contentsAt, contentsEnd, out.length - contentsEnd];
  const brText = `[${byteRange.join(' ')}]`.padEnd(BYTE_RANGE_PLACEHOLDER.length, ' ');
  if (brText.length !== BYTE_RANGE_PLACEHOLDER.length) throw new YinxinError('internal', 'the byte range does not fit its placeholder');
  buf.write(brText, brAt, 'latin1');

  const hash = sealHash(input.signer);
  const documentDigest = digest(hash, [out.subarray(0, contentsAt), out.subarray(contentsEnd)]);
  const cms = await buildSignedData({ ...input, hash, contentDigest: documentDigest });
  if (cms.length > reserve) throw new YinxinError('internal', `the CMS (${cms.length} bytes) is larger than the space reserved (${reserve})`);
  buf.write(Buffer.from(cms).toString('hex'), contentsAt + 1, 'latin1');
  const result: PadesResult = { pdf: out, documentDigest: Buffer.from(documentDigest).toString('hex'), hash, fieldName, byteRange, level };
  if (level === 'B-LT') {
    // ETSI EN 319 142-1 s5.4: the validation data goes into the DSS after the signature.
    const data = await collectValidationData(certificatesOfSignature(cms), input.validationData!);
    const contents = new Uint8Array(Buffer.from(buf.toString('latin1', contentsAt + 1, contentsEnd - 1), 'hex'));
    result.pdf = appendDss(out, contents, data, input.clock.now());
  }
  return result;
}
