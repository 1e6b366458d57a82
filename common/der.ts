/**
 * Stepping over DER without decoding it: where a TLV (tag, length, value) of X.690 s8.1 starts,
 * where its contents start and where it ends. For hot paths that need a few fields of a structure
 * asn1js would otherwise build whole (an asn1js parse of a time-stamp token costs ~75 us; stepping
 * to its TSTInfo's imprint and nonce, about 1 us). These readers never throw: anything they do
 * not expect (multi-octet tags, indefinite or oversized lengths, values running past their
 * container) is `undefined`, and the caller falls back to a full parse that reports the error.
 */

export interface Tlv {
  /** The identifier octet (single-octet tags only). */
  tag: number;
  start: number;
  contentStart: number;
  end: number;
}

/** The TLV starting at `start`, which must end by `limit` (X.690 s10.1: definite lengths only). */
export function derTlv(der: Uint8Array, start: number, limit: number = der.length): Tlv | undefined {
  if (start + 2 > limit) return undefined;
  const tag = der[start];
  if ((tag & 0x1f) === 0x1f) return undefined;
  let length = der[start + 1];
  let contentStart = start + 2;
  if (length & 0x80) {
    const octets = length & 0x7f;
    if (octets === 0 || octets > 4 || contentStart + octets > limit) return undefined;
    length = 0;
    for (let i = 0; i < octets; i++) length = length * 256 + der[contentStart + i];
    contentStart += octets;
  }
  const end = contentStart + length;
  return end > limit ? undefined : { tag, start, contentStart, end };
}

/** The TLVs directly inside a constructed `parent`, or the first `max` of them. */
export function derChildren(der: Uint8Array, parent: Tlv, max = Infinity): Tlv[] | undefined {
  if ((parent.tag & 0x20) === 0) return undefined;
  const out: Tlv[] = [];
  for (let at = parent.contentStart; at < parent.end && out.length < max;) {
    const child = derTlv(der, at, parent.end);
    if (!child) return undefined;
    out.push(child);
    at = child.end;
  }
  return out;
}

const UTC_TIME = /^\d{12}Z$/;
const GENERALIZED_TIME = /^\d{14}(\.\d*[1-9])?Z$/;

/** X.690 rules for the contents of the universal primitive types that have any (DER, s10 and s11). */
function primitiveWellFormed(der: Uint8Array, tlv: Tlv): boolean {
  const length = tlv.end - tlv.contentStart;
  const text = () => Buffer.from(der.buffer, der.byteOffset + tlv.contentStart, length).toString('latin1');
  switch (tlv.tag) {
    case 0x01: return length === 1 && (der[tlv.contentStart] === 0x00 || der[tlv.contentStart] === 0xff); // BOOLEAN, s11.1
    case 0x02: case 0x0a: return length > 0; // INTEGER, ENUMERATED
    case 0x03: return length > 0 && der[tlv.contentStart] <= 7 && (length > 1 || der[tlv.contentStart] === 0); // BIT STRING
    case 0x05: return length === 0; // NULL
    case 0x06: case 0x0d: return length > 0 && (der[tlv.end - 1] & 0x80) === 0; // OBJECT IDENTIFIER, RELATIVE-OID: last subidentifier whole
    case 0x0f: case 0x10: case 0x11: return false; // reserved; SEQUENCE and SET are constructed
    case 0x17: return UTC_TIME.test(text()); // UTCTime, s11.8
    case 0x18: return GENERALIZED_TIME.test(text()); // GeneralizedTime, s11.7
    case 0x1c: return length % 4 === 0; // UniversalString
    case 0x1e: return length % 2 === 0; // BMPString
    default: return true;
  }
}

/**
 * Whether `tlv` and everything inside it are well-formed DER as far as structure goes: every
 * constructed TLV exactly tiled by its children, no end-of-contents (universal 0, BER's indefinite
 * lengths only), no universal type constructed but SEQUENCE and SET (X.690 s10.2: DER writes
 * strings primitive), and universal primitives whose contents break their type's rules (a cut
 * OBJECT IDENTIFIER, a BOOLEAN other than 00 or FF, a malformed time, ...). Other contents are not
 * checked (an INTEGER's minimal encoding, a string's character set).
 */
export function derWellFormed(der: Uint8Array, tlv: Tlv, depth = 0): boolean {
  if ((tlv.tag & 0xdf) === 0) return false;
  if ((tlv.tag & 0xe0) === 0x20 && tlv.tag !== 0x30 && tlv.tag !== 0x31) return false;
  if ((tlv.tag & 0xe0) === 0) return primitiveWellFormed(der, tlv);
  if ((tlv.tag & 0x20) === 0) return true;
  if (depth > 32) return false;
  const children = derChildren(der, tlv);
  return children !== undefined && children.every((c) => derWellFormed(der, c, depth + 1));
}

function octetsEqual(der: Uint8Array, start: number, end: number, bytes: Uint8Array): boolean {
  if (end - start !== bytes.length) return false;
  for (let i = 0; i < bytes.length; i++) if (der[start + i] !== bytes[i]) return false;
  return true;
}

/** Whether the whole TLV (tag and length included) is `bytes`. */
export function derEquals(der: Uint8Array, tlv: Tlv, bytes: Uint8Array): boolean {
  return octetsEqual(der, tlv.start, tlv.end, bytes);
}

/** Whether the contents of `tlv` are `bytes`. */
export function derContentEquals(der: Uint8Array, tlv: Tlv, bytes: Uint8Array): boolean {
  return octetsEqual(der, tlv.contentStart, tlv.end, bytes);
}
