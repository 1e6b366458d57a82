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
 * (signature-field.ts writes the field, page, AcroForm and placeholders; this file the appearance.)
 * The CMS (cms.ts) has signing-certificate-v2, no signing-time (s5.4.3: /M carries the claimed
 * time) and the signature-time-stamp. Levels B-LT (ltv.ts) and B-LTA (archive.ts) add updates after it.
 */
import type { Clock } from '../common/clock.ts';
import { YinxinError } from '../common/errors.ts';
import { SEAL_FONT, sealAppearanceStream } from './appearance.ts';
import { addArchiveTimeStamp } from './archive.ts';
import { pngToPdfImage } from './png.ts';
import { findText, type TextBox } from './text.ts';
import { appendDss, certificatesOfSignature, collectValidationData, type ValidationDataSource } from './ltv.ts';
import { buildSignedData, digest, sealHash, type SealCredential, type TimeStamper } from './cms.ts';
import { PdfDict, PdfDocument, PdfName, PdfString, serialize, textString } from './pdf.ts';
import { prepareSignature, UpdateObjects } from './signature-field.ts';

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
  /**
   * B-LT adds a second incremental update with the DSS (ltv.ts); B-LTA then a document time-stamp
   * and its validation data (archive.ts). Both need `validationData`. Default B-T.
   */
  level?: PadesLevel;
  validationData?: ValidationDataSource;
  /**
   * Called once the HSM has signed, with the digest it signed (hex), just before the time-stamp is
   * asked for (the registry starts recording the use there: its commit overlaps the TSA's).
   */
  onSigned?: (digest: { documentDigest: string; hash: string }) => void;
}

/** The PAdES baseline levels a seal can be made at (B-B never: a seal without a time-stamp is refused). */
export const PADES_LEVELS = ['B-T', 'B-LT', 'B-LTA'] as const;
export type PadesLevel = typeof PADES_LEVELS[number];

export interface PadesResult {
  /** The sealed file in one buffer (joined from `parts` on first use). */
  readonly pdf: Uint8Array;
  /**
   * The sealed file as the original bytes (the caller's, not copied) followed by the updates:
   * what a writer that takes several buffers sends without copying the document again.
   */
  parts: Uint8Array[];
  /** The digest the seal signs (over the byte ranges), hex, and its algorithm. */
  documentDigest: string;
  hash: string;
  fieldName: string;
  byteRange: [number, number, number, number];
  level: PadesLevel;
}

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

/**
 * Seals `pdf` and returns the new file: the original bytes followed by one incremental update.
 * Throws 'bad-request' (details.reason 'pdf-malformed' | 'pdf-encrypted'), 'validation-failed'
 * for a bad placement, 'time-not-available' when the TSA fails. Nothing is returned half-written.
 */
export async function sealPdf(pdf: Uint8Array, input: PadesInput): Promise<PadesResult> {
  const level = input.level ?? 'B-T';
  if (!PADES_LEVELS.includes(level)) throw new YinxinError('validation-failed', `level must be one of ${PADES_LEVELS.join(', ')}`, { field: 'level' });
  if (level !== 'B-T' && !input.validationData) throw new YinxinError('config-invalid', `${level} sealing needs a source of OCSP responses and CRLs`);
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

  const update = new UpdateObjects(doc);
  const alloc = () => update.alloc();
  const apRef = alloc();

  // Appearance: a Form XObject the size of the widget.
  const bbox = [0, 0, size, size];
  const apResources = new PdfDict();
  let apContent: string;
  if (input.image.kind === 'drawn') {
    const fontRef = alloc();
    const cidFontRef = alloc();
    const descriptorRef = alloc();
    update.add(descriptorRef, serialize(new PdfDict([
      ['Type', new PdfName('FontDescriptor')], ['FontName', new PdfName('STSong-Light')], ['Flags', 6],
      ['FontBBox', [-25, -254, 1000, 880]], ['ItalicAngle', 0], ['Ascent', 880], ['Descent', -120], ['CapHeight', 880], ['StemV', 93],
    ])));
    update.add(cidFontRef, serialize(new PdfDict([
      ['Type', new PdfName('Font')], ['Subtype', new PdfName('CIDFontType0')], ['BaseFont', new PdfName('STSong-Light')],
      ['CIDSystemInfo', new PdfDict([['Registry', new PdfString(Buffer.from('Adobe'))], ['Ordering', new PdfString(Buffer.from('GB1'))], ['Supplement', 2]])],
      ['FontDescriptor', descriptorRef], ['DW', 1000],
    ])));
    update.add(fontRef, serialize(new PdfDict([
      ['Type', new PdfName('Font')], ['Subtype', new PdfName('Type0')], ['BaseFont', new PdfName('STSong-Light')],
      ['Encoding', new PdfName('UniGB-UCS2-H')], ['DescendantFonts', [cidFontRef]],
    ])));
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
      update.add(maskRef, { dict: new PdfDict([
        ['Type', new PdfName('XObject')], ['Subtype', new PdfName('Image')], ['Width', image.width], ['Height', image.height],
        ['ColorSpace', new PdfName('DeviceGray')], ['BitsPerComponent', 8], ['Filter', new PdfName('FlateDecode')],
      ]), data: image.alpha });
      dict.set('SMask', maskRef);
    }
    update.add(imageRef, { dict, data: image.color });
    apResources.set('XObject', new PdfDict([['Im1', imageRef]]));
    apContent = drawImage(image.width, image.height, size);
  } else {
    const { width, height, components } = jpegSize(input.image.bytes);
    const imageRef = alloc();
    update.add(imageRef, { dict: new PdfDict([
      ['Type', new PdfName('XObject')], ['Subtype', new PdfName('Image')], ['Width', width], ['Height', height],
      ['ColorSpace', new PdfName(components === 1 ? 'DeviceGray' : components === 4 ? 'DeviceCMYK' : 'DeviceRGB')],
      ['BitsPerComponent', 8], ['Filter', new PdfName('DCTDecode')],
    ]), data: input.image.bytes });
    apResources.set('XObject', new PdfDict([['Im1', imageRef]]));
    apContent = drawImage(width, height, size);
  }
  update.add(apRef, { dict: new PdfDict([
    ['Type', new PdfName('XObject')], ['Subtype', new PdfName('Form')], ['BBox', bbox], ['Resources', apResources],
  ]), data: new Uint8Array(Buffer.from(apContent, 'latin1')) });

  // The signature dictionary (s12.8.1); /M carries the claimed time (ETSI EN 319 142-1 s5.4.3).
  const certBytes = input.certificate.length + input.chain.reduce((a, c) => a + c.length, 0);
  const signature = new PdfDict([
    ['Type', new PdfName('Sig')], ['Filter', new PdfName('Adobe.PPKLite')], ['SubFilter', new PdfName('ETSI.CAdES.detached')],
    ['M', new PdfString(Buffer.from(pdfDate(input.clock.now()), 'latin1'))],
  ]);
  if (input.name) signature.set('Name', textString(input.name));
  if (input.reason) signature.set('Reason', textString(input.reason));
  if (input.location) signature.set('Location', textString(input.location));
  const prepared = prepareSignature(pdf, update, {
    prefix: 'Seal', page, rect: [x, y, x + size, y + size], appearance: apRef, signature, reserve: input.reserve ?? certBytes + 8192,
  });

  const hash = sealHash(input.signer);
  const documentDigest = digest(hash, prepared.signedParts);
  const documentDigestHex = Buffer.from(documentDigest).toString('hex');
  const { onSigned } = input;
  const cms = await buildSignedData({
    ...input, hash, contentDigest: documentDigest, onSigned: onSigned && (() => onSigned({ documentDigest: documentDigestHex, hash })),
  });
  prepared.fill(cms);
  let parts: Uint8Array[] = prepared.parts;
  let join = prepared.joined;
  if (level === 'B-LT' || level === 'B-LTA') {
    // ETSI EN 319 142-1 s5.4: the validation data goes into the DSS after the signature.
    const certificates = certificatesOfSignature(cms);
    const data = await collectValidationData(certificates, input.validationData!);
    let sealed = appendDss(prepared.joined(), prepared.contents(), data, input.clock.now());
    if (level === 'B-LTA') {
      // s6.3 B-LTA: a document time-stamp over all of it, then its own validation data (archive.ts).
      sealed = (await addArchiveTimeStamp(sealed, { timeStamper: input.timeStamper, validationData: input.validationData!, clock: input.clock, certificates })).pdf;
    }
    parts = [sealed];
    join = () => sealed;
  }
  let joined: Uint8Array | undefined;
  const result: PadesResult = {
    parts, documentDigest: documentDigestHex, hash, fieldName: prepared.fieldName, byteRange: prepared.byteRange, level,
    get pdf() {
      return (joined ??= join());
    },
  };
  return result;
}
