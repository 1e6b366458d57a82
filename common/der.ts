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

/**
 * Where the TLV at `start` ends, or -1 when it is not one that ends by `limit` (X.690 s10.1:
 * definite lengths only): derTlv without making its object, for walks that allocate nothing.
 */
function tlvEnd(der: Uint8Array, start: number, limit: number): number {
  if (start + 2 > limit) return -1;
  if ((der[start] & 0x1f) === 0x1f) return -1;
  let length = der[start + 1];
  let contentStart = start + 2;
  if (length & 0x80) {
    const octets = length & 0x7f;
    if (octets === 0 || octets > 4 || contentStart + octets > limit) return -1;
    length = 0;
    for (let i = 0; i < octets; i++) length = length * 256 + der[contentStart + i];
    contentStart += octets;
  }
  const end = contentStart + length;
  return end > limit ? -1 : end;
}

/** Where the contents of the TLV at `start` begin (its header read by tlvEnd). */
function contentStartOf(der: Uint8Array, start: number): number {
  const length = der[start + 1];
  return start + 2 + (length & 0x80 ? length & 0x7f : 0);
}

/** The TLV starting at `start`, which must end by `limit` (X.690 s10.1: definite lengths only). */
export function derTlv(der: Uint8Array, start: number, limit: number = der.length): Tlv | undefined {
  const end = tlvEnd(der, start, limit);
  return end < 0 ? undefined : { tag: der[start], start, contentStart: contentStartOf(der, start), end };
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

/** The child at `index` directly inside a constructed `parent`; undefined if there is none or those before it are damaged. */
export function derChild(der: Uint8Array, parent: Tlv, index: number): Tlv | undefined {
  if ((parent.tag & 0x20) === 0) return undefined;
  let at = parent.contentStart;
  for (let i = 0; i < index; i++) {
    if (at >= parent.end) return undefined;
    at = tlvEnd(der, at, parent.end);
    if (at < 0) return undefined;
  }
  return at < parent.end ? derTlv(der, at, parent.end) : undefined;
}

function isDigits(der: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (der[i] < 0x30 || der[i] > 0x39) return false;
  return true;
}

const Z = 0x5a;
const DOT = 0x2e;

/** UTCTime in DER (X.690 s11.8): YYMMDDHHMMSSZ. */
function utcTimeWellFormed(der: Uint8Array, start: number, end: number): boolean {
  return end - start === 13 && isDigits(der, start, start + 12) && der[start + 12] === Z;
}

/** GeneralizedTime in DER (X.690 s11.7): YYYYMMDDHHMMSS, a fraction without trailing zeros, Z. */
function generalizedTimeWellFormed(der: Uint8Array, start: number, end: number): boolean {
  if (end - start < 15 || !isDigits(der, start, start + 14) || der[end - 1] !== Z) return false;
  if (end - start === 15) return true;
  // ".d*[1-9]" between the seconds and the Z
  return der[start + 14] === DOT && end - start >= 17 && isDigits(der, start + 15, end - 1) && der[end - 2] !== 0x30;
}

/** X.690 rules for the contents of the universal primitive types that have any (DER, s10 and s11). */
function primitiveWellFormed(der: Uint8Array, tag: number, contentStart: number, end: number): boolean {
  const length = end - contentStart;
  switch (tag) {
    case 0x01: return length === 1 && (der[contentStart] === 0x00 || der[contentStart] === 0xff); // BOOLEAN, s11.1
    case 0x02: case 0x0a: return length > 0; // INTEGER, ENUMERATED
    case 0x03: return length > 0 && der[contentStart] <= 7 && (length > 1 || der[contentStart] === 0); // BIT STRING
    case 0x05: return length === 0; // NULL
    case 0x06: case 0x0d: return length > 0 && (der[end - 1] & 0x80) === 0; // OBJECT IDENTIFIER, RELATIVE-OID: last subidentifier whole
    case 0x0f: case 0x10: case 0x11: return false; // reserved; SEQUENCE and SET are constructed
    case 0x17: return utcTimeWellFormed(der, contentStart, end); // UTCTime, s11.8
    case 0x18: return generalizedTimeWellFormed(der, contentStart, end); // GeneralizedTime, s11.7
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
export function derWellFormed(der: Uint8Array, tlv: Tlv): boolean {
  return wellFormedAt(der, tlv.start, tlv.end, 0);
}

/** derWellFormed of the TLV at `start` that ends at `end` (already read), allocating nothing. */
function wellFormedAt(der: Uint8Array, start: number, end: number, depth: number): boolean {
  const tag = der[start];
  if ((tag & 0xdf) === 0) return false;
  if ((tag & 0xe0) === 0x20 && tag !== 0x30 && tag !== 0x31) return false;
  const contentStart = contentStartOf(der, start);
  if ((tag & 0xe0) === 0) return primitiveWellFormed(der, tag, contentStart, end);
  if ((tag & 0x20) === 0) return true;
  if (depth > 32) return false;
  for (let at = contentStart; at < end;) {
    const childEnd = tlvEnd(der, at, end);
    if (childEnd < 0 || !wellFormedAt(der, at, childEnd, depth + 1)) return false;
    at = childEnd;
  }
  return true;
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
