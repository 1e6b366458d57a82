/**
 * What a seal (PAdES signature, pades.ts) and a document time-stamp (archive.ts) write alike in
 * their incremental update:
 *   - a signature field merged with its widget annotation (ISO 32000-1 s12.7.3.1, s12.7.4.5) on a
 *     page, added to the page's /Annots and to the AcroForm's /Fields with /SigFlags 3
 *     (SignaturesExist | AppendOnly, s12.7.2 table 219);
 *   - the signature dictionary (s12.8.1; the document time-stamp dictionary of ISO 32000-2
 *     s12.8.5) with /ByteRange and /Contents written as placeholders: once the update's bytes
 *     exist, /ByteRange is patched, the caller digests the two ranges and the DER it signs or has
 *     time-stamped goes into /Contents.
 */
import { YinxinError } from '../common/errors.ts';
import { appendUpdate, writeIncrement, type NewObject } from './increment.ts';
import { PdfDict, PdfName, PdfRef, PdfStream, PdfString, serialize, textString, type PdfDocument, type PdfObject } from './pdf.ts';

const BYTE_RANGE_PLACEHOLDER = '[0 ********** ********** **********]';

/** New objects of one incremental update and the object numbers they take. */
export class UpdateObjects {
  readonly doc: PdfDocument;
  readonly objects: NewObject[] = [];
  #next: number;

  constructor(doc: PdfDocument) {
    this.doc = doc;
    this.#next = doc.size;
  }

  alloc(): PdfRef {
    return new PdfRef(this.#next++, 0);
  }

  /** The trailer's /Size after this update. */
  get size(): number {
    return this.#next;
  }

  add(ref: PdfRef, body: NewObject['body']): void {
    this.objects.push({ num: ref.num, gen: ref.gen, body });
  }
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

export interface SignatureFieldInput {
  /** Field names are `${prefix}1`, `${prefix}2`, ...: the first one not in use. */
  prefix: string;
  page: { ref: PdfRef; dict: PdfDict };
  /** The widget's rectangle; [0 0 0 0] for an invisible one. */
  rect: number[];
  /** The widget's normal appearance (a Form XObject), if it is visible. */
  appearance?: PdfRef;
  /** The signature dictionary without /ByteRange and /Contents. */
  signature: PdfDict;
  /** Octets reserved for the DER in /Contents. */
  reserve: number;
}

export interface PreparedSignature {
  /**
   * The new file as the original bytes (not copied) and the update after them; /Contents, in the
   * update, is zero until `fill`. A 500 KB document is not copied once more per seal.
   */
  parts: [Uint8Array, Uint8Array];
  /** The new file in one new buffer (a copy of `parts` as they are now: call it after `fill`). */
  joined(): Uint8Array;
  fieldName: string;
  byteRange: [number, number, number, number];
  /** The bytes the signature or time-stamp covers: the file without the /Contents string. */
  signedParts: Uint8Array[];
  /** Writes `der` into /Contents (zero-padded); too large for the reserve is an internal error. */
  fill(der: Uint8Array): void;
  /** The /Contents string's bytes as filled, zero padding included (what a VRI key hashes). */
  contents(): Uint8Array;
}

/**
 * Adds the field, widget, page, AcroForm and signature dictionary to `update`, writes the update
 * after `pdf` and patches /ByteRange. The caller then digests `signedParts` and calls `fill`.
 */
export function prepareSignature(pdf: Uint8Array, update: UpdateObjects, input: SignatureFieldInput): PreparedSignature {
  const { doc } = update;
  const catalog = doc.catalog;
  const acroFormEntry = catalog.get('AcroForm');
  const acroForm = acroFormEntry === undefined ? new PdfDict() : doc.dict(acroFormEntry, '/AcroForm').clone();
  const oldFields = doc.resolve(acroForm.get('Fields'));
  const fields = Array.isArray(oldFields) ? [...oldFields] : [];
  const used = fieldNames(doc, fields);
  let n = 1;
  while (used.has(`${input.prefix}${n}`)) n++;
  const fieldName = `${input.prefix}${n}`;
  const sigRef = update.alloc();
  const widgetRef = update.alloc();

  // The signature field merged with its widget (s12.7.3.1): Print + Locked (F 132).
  const widget = new PdfDict([
    ['Type', new PdfName('Annot')], ['Subtype', new PdfName('Widget')], ['FT', new PdfName('Sig')], ['T', textString(fieldName)],
    ['V', sigRef], ['P', input.page.ref], ['Rect', input.rect], ['F', 132],
  ]);
  if (input.appearance) widget.set('AP', new PdfDict([['N', input.appearance]]));
  update.add(widgetRef, serialize(widget));

  // The page with the widget in /Annots (an indirect /Annots array is rewritten in place of its own object).
  const annotsEntry = input.page.dict.get('Annots');
  const annots = doc.resolve(annotsEntry);
  const newAnnots = [...(Array.isArray(annots) ? annots : []), widgetRef];
  if (annotsEntry instanceof PdfRef && Array.isArray(annots)) {
    update.add(annotsEntry, serialize(newAnnots));
  } else {
    if (doc.resolve(input.page.ref) instanceof PdfStream) throw new YinxinError('bad-request', 'a page object is a stream', { reason: 'pdf-malformed' });
    update.add(input.page.ref, serialize(input.page.dict.clone().set('Annots', newAnnots)));
  }

  acroForm.set('Fields', [...fields, widgetRef]).set('SigFlags', 3);
  if (acroFormEntry instanceof PdfRef) {
    update.add(acroFormEntry, serialize(acroForm));
  } else {
    const acroRef = update.alloc();
    update.add(acroRef, serialize(acroForm));
    update.add(doc.catalogRef, serialize(catalog.clone().set('AcroForm', acroRef)));
  }

  const reserve = input.reserve;
  const sigText = serialize(input.signature.clone().set('ByteRange', new PdfName('__BYTERANGE__')).set('Contents', new PdfName('__CONTENTS__')))
    .replace('/__BYTERANGE__', BYTE_RANGE_PLACEHOLDER)
    .replace('/__CONTENTS__', `<${'0'.repeat(reserve * 2)}>`);
  update.add(sigRef, sigText);

  const added = writeIncrement(doc, update.objects, update.size);
  // Find the placeholders in the update only (never in the original bytes); offsets in the file are pdf.length further.
  const buf = Buffer.from(added.buffer, added.byteOffset, added.byteLength);
  const brAt = buf.indexOf(BYTE_RANGE_PLACEHOLDER, 0, 'latin1');
  const contentsAt = buf.indexOf(`/Contents <${'0'.repeat(Math.min(64, reserve * 2))}`, 0, 'latin1') + '/Contents '.length;
  if (brAt < 0 || contentsAt < '/Contents '.length) throw new YinxinError('internal', 'signature placeholders not found');
  const contentsEnd = contentsAt + reserve * 2 + 2;
  const length = pdf.length + added.length;
  const byteRange: [number, number, number, number] = [0, pdf.length + contentsAt, pdf.length + contentsEnd, length - pdf.length - contentsEnd];
  const brText = `[${byteRange.join(' ')}]`.padEnd(BYTE_RANGE_PLACEHOLDER.length, ' ');
  if (brText.length !== BYTE_RANGE_PLACEHOLDER.length) throw new YinxinError('internal', 'the byte range does not fit its placeholder');
  buf.write(brText, brAt, 'latin1');
  return {
    parts: [pdf, added], fieldName, byteRange,
    joined: () => appendUpdate(pdf, added),
    signedParts: [pdf, added.subarray(0, contentsAt), added.subarray(contentsEnd)],
    fill(der) {
      if (der.length > reserve) throw new YinxinError('internal', `the signature (${der.length} bytes) is larger than the space reserved (${reserve})`);
      buf.write(Buffer.from(der).toString('hex'), contentsAt + 1, 'latin1');
    },
    contents: () => new Uint8Array(Buffer.from(buf.toString('latin1', contentsAt + 1, contentsEnd - 1), 'hex')),
  };
}
