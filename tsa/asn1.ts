/**
 * ASN.1 helpers shared by the TSA's writer and reader: the OIDs of RFC 3161 / RFC 5816 / RFC 5652,
 * and `Preencoded`, which lets a fixed piece that asn1js encoded once (a certificate, an
 * AlgorithmIdentifier, an attribute) sit inside an asn1js structure that is encoded per request.
 */
import * as asn1js from 'asn1js';

export const TSA_OID = {
  /** RFC 5652 s5.1 */
  signedData: '1.2.840.113549.1.7.2',
  /** RFC 3161 s2.4.2 */
  tstInfo: '1.2.840.113549.1.9.16.1.4',
  /** RFC 5652 s11.1 / s11.2 */
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
  /** RFC 2634 s5.4 (ESSCertID) and RFC 5035 s3 (ESSCertIDv2) */
  signingCertificate: '1.2.840.113549.1.9.16.2.12',
  signingCertificateV2: '1.2.840.113549.1.9.16.2.47',
  /** RFC 5280 s4.2.1.12 */
  extKeyUsage: '2.5.29.37',
  timeStamping: '1.3.6.1.5.5.7.3.8',
} as const;

/**
 * DER bytes encoded once and written verbatim wherever the object is placed. asn1js' own RawData
 * returns its bytes but ignores the writer a parent SEQUENCE hands it (so it vanishes from the
 * parent's encoding); this subclass writes into it.
 */
class PreencodedBlock extends asn1js.RawData {
  readonly #bytes: ArrayBuffer;
  constructor(der: Uint8Array) {
    super({ data: der });
    this.#bytes = der.buffer.slice(der.byteOffset, der.byteOffset + der.byteLength) as ArrayBuffer;
  }
  override toBER(sizeOnly?: boolean, writer?: asn1js.ViewWriter): ArrayBuffer {
    if (writer) {
      writer.write(this.#bytes);
      return new ArrayBuffer(0);
    }
    return this.#bytes;
  }
}

/** Typed as a block so it can sit in an asn1js value list. */
export function preencoded(der: Uint8Array): asn1js.BaseBlock {
  return new PreencodedBlock(der) as unknown as asn1js.BaseBlock;
}

export function encode(block: { toBER(sizeOnly?: boolean): ArrayBuffer }): Uint8Array {
  return new Uint8Array(block.toBER(false));
}

/** X.690 s11.6: the elements of a DER SET OF sort by their encodings, as octet strings. */
export function compareDer(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

export const DER_TAG = { integer: 0x02, octetString: 0x04 } as const;

/**
 * The DER TLV of a primitive value whose content octets are given (an OCTET STRING, or an INTEGER
 * already in minimal two's complement): what asn1js writes for it, without building its object
 * (per-request fields are filled into templates; token.test.ts compares with asn1js).
 */
export function primitiveTlv(tag: number, content: Uint8Array): Uint8Array {
  const n = content.length;
  const header = n < 0x80 ? 2 : n < 0x100 ? 3 : n < 0x10000 ? 4 : 5;
  const out = new Uint8Array(header + n);
  out[0] = tag;
  if (header === 2) out[1] = n;
  else {
    out[1] = 0x80 | (header - 2);
    for (let i = header - 1, v = n; i >= 2; i--, v >>>= 8) out[i] = v & 0xff;
  }
  out.set(content, header);
  return out;
}

export function hex(u8: Uint8Array | ArrayBuffer): string {
  return Buffer.from(u8 instanceof ArrayBuffer ? new Uint8Array(u8) : u8).toString('hex');
}

/**
 * A DER template: a structure whose shape and every length are fixed, encoded once by asn1js with
 * placeholder TLVs in its variable slots. fill() copies it and writes each slot's TLV (itself
 * encoded by asn1js, of exactly the placeholder's length) at the slot's offset, so the result is
 * the bytes asn1js would produce for the whole structure, without building an object tree per use.
 * A change of any length is a different template (callers key their caches by the lengths).
 */
export type TemplatePart =
  | { fixed: Uint8Array }
  | { slot: string; length: number }
  /** A constructed node: `wrap` is the asn1js block (SEQUENCE, SET, [n]) around the parts' TLVs. */
  | { wrap: (content: asn1js.BaseBlock) => asn1js.BaseBlock; parts: TemplatePart[] };

export class DerTemplate {
  readonly bytes: Uint8Array;
  readonly #slots: Array<{ name: string; offset: number; length: number }> = [];

  constructor(root: TemplatePart) {
    this.bytes = this.#build(root, 0);
  }

  #build(part: TemplatePart, at: number): Uint8Array {
    if ('fixed' in part) return part.fixed;
    if ('slot' in part) {
      this.#slots.push({ name: part.slot, offset: at, length: part.length });
      return new Uint8Array(part.length);
    }
    // The header's length depends on the content's length only: encode the content once to know
    // it, then the node around it; children's offsets follow the header.
    const contentLength = part.parts.reduce((n, p) => n + partLength(p), 0);
    const header = encode(part.wrap(preencoded(new Uint8Array(contentLength)))).length - contentLength;
    const chunks: Uint8Array[] = [];
    let offset = at + header;
    for (const p of part.parts) {
      const bytes = this.#build(p, offset);
      chunks.push(bytes);
      offset += bytes.length;
    }
    return encode(part.wrap(preencoded(Buffer.concat(chunks))));
  }

  /** The template with every slot filled; each value must be the TLV of the slot's length. */
  fill(values: Record<string, Uint8Array>): Uint8Array {
    const out = Buffer.allocUnsafe(this.bytes.length);
    out.set(this.bytes);
    for (const s of this.#slots) {
      const v = values[s.name];
      if (!v || v.length !== s.length) throw new Error(`DER template slot ${s.name}: expected ${s.length} octets, got ${v?.length}`);
      out.set(v, s.offset);
    }
    return new Uint8Array(out.buffer, out.byteOffset, out.length);
  }
}

function partLength(part: TemplatePart): number {
  if ('fixed' in part) return part.fixed.length;
  if ('slot' in part) return part.length;
  const content = part.parts.reduce((n, p) => n + partLength(p), 0);
  return encode(part.wrap(preencoded(new Uint8Array(content)))).length;
}

export const sequenceOf = (...parts: TemplatePart[]): TemplatePart => ({ wrap: (c) => new asn1js.Sequence({ value: [c] }), parts });
export const setOf = (...parts: TemplatePart[]): TemplatePart => ({ wrap: (c) => new asn1js.Set({ value: [c] }), parts });
/** [n] context-specific, constructed (EXPLICIT tagging, or IMPLICIT of a constructed type). */
export const contextOf = (tagNumber: number, ...parts: TemplatePart[]): TemplatePart =>
  ({ wrap: (c) => new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber }, value: [c] }), parts });
