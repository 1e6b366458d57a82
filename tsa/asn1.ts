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

/** An asn1js Integer carrying exactly these two's-complement octets. */
export function integerOf(octets: Uint8Array): asn1js.Integer {
  return new asn1js.Integer({ valueHex: octets });
}

export function hex(u8: Uint8Array | ArrayBuffer): string {
  return Buffer.from(u8 instanceof ArrayBuffer ? new Uint8Array(u8) : u8).toString('hex');
}
