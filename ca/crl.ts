/**
 * X.509 v2 CRL encoder (RFC 5280 s5), built for size: a million revoked certificates are encoded
 * one entry at a time into a chunked buffer. Every piece is an asn1js (or pkijs) encoding; pieces
 * that repeat (dates, entry extensions, SEQUENCE headers by length) are encoded once and reused,
 * and the headers joining them come from asn1js' length block, long form included.
 */
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { YinxinError } from '../common/errors.ts';
import { signatureAlgorithmDer } from '../hsm/algorithms.ts';
import type { Signer } from '../hsm/signer.ts';

/** CRLReason codes, RFC 5280 s5.3.1 (value 7 is not used). */
export const crlEntryReasons = {
  unspecified: 0,
  keyCompromise: 1,
  cACompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  certificateHold: 6,
  removeFromCRL: 8,
  privilegeWithdrawn: 9,
  aACompromise: 10,
} as const;

export type CrlReasonName = keyof typeof crlEntryReasons;
export type CrlReasonCode = (typeof crlEntryReasons)[CrlReasonName];

const reasonNamesByCode = new Map<number, CrlReasonName>(
  Object.entries(crlEntryReasons).map(([name, code]) => [code, name as CrlReasonName]),
);

/** The RFC 5280 name of a CRLReason code, or undefined for 7 and out-of-range values. */
export function crlReasonName(code: number): CrlReasonName | undefined {
  return reasonNamesByCode.get(code);
}

export interface CrlEntry {
  /**
   * The certificate serial number as big-endian unsigned bytes (a DER INTEGER's content octets
   * from the certificate work too): leading zero octets are dropped and one is added back when
   * the high bit is set, so the INTEGER is minimal and positive.
   */
  serial: Uint8Array;
  revocationDate: Date;
  /** CRLReason code; omitted (or 0, unspecified) means no reasonCode extension, as s5.3.1 recommends. */
  reason?: number;
  /** s5.3.2: when the key is known or suspected to have been compromised. */
  invalidityDate?: Date;
}

export interface CrlParameters {
  /** DER Name of the issuing CA (its certificate's subject, byte for byte). */
  issuerName: Uint8Array;
  /** The keyIdentifier of the CA's subjectKeyIdentifier (s5.2.1). */
  authorityKeyId: Uint8Array;
  signer: Signer;
  thisUpdate: Date;
  nextUpdate: Date;
  crlNumber: bigint;
  /** Makes this a delta CRL relative to the complete CRL with this number (s5.2.4). */
  baseCrlNumber?: bigint;
  issuingDistributionPoint?: { uri: string; onlyContainsUserCerts?: boolean; onlyContainsAttributeCerts?: boolean };
  /**
   * Addition to the agreed API: the Freshest CRL extension (s5.2.6, non-critical) of a complete
   * CRL, where its delta CRLs are published. Relying parties (openssl -use_deltas among them)
   * only apply delta CRLs to a complete CRL that carries it. Not allowed in a delta CRL.
   */
  freshestCrlUri?: string;
  entries: Iterable<CrlEntry>;
}

const OID_AUTHORITY_KEY_IDENTIFIER = '2.5.29.35';
const OID_CRL_NUMBER = '2.5.29.20';
const OID_DELTA_CRL_INDICATOR = '2.5.29.27';
const OID_ISSUING_DISTRIBUTION_POINT = '2.5.29.28';
const OID_FRESHEST_CRL = '2.5.29.46';
const OID_REASON_CODE = '2.5.29.21';
const OID_INVALIDITY_DATE = '2.5.29.24';

function invalid(message: string, details?: Record<string, unknown>): YinxinError {
  return new YinxinError('validation-failed', message, details);
}

function ber(block: { toBER(sizeOnly?: boolean): ArrayBuffer }): Uint8Array {
  return new Uint8Array(block.toBER(false));
}

/**
 * DER encoded earlier (by asn1js or pkijs) placed as a child of an asn1js constructed value.
 * asn1js 3.0's own RawData ignores the writer its parent passes in and so vanishes from the
 * output; this one writes itself into it.
 */
class PreEncoded extends asn1js.RawData {
  override toBER(sizeOnly?: boolean, writer?: { write(buf: ArrayBuffer): void }): ArrayBuffer {
    const view = this.dataView;
    const buf = view.byteOffset === 0 && view.byteLength === view.buffer.byteLength ? (view.buffer as ArrayBuffer) : super.toBER(sizeOnly);
    if (!writer) return buf;
    writer.write(buf);
    return new ArrayBuffer(0);
  }
}

/** Typed as a BaseBlock for asn1js' constructed values, which only need toBER(sizeOnly, writer) from a child. */
function raw(data: Uint8Array): asn1js.BaseBlock {
  return new PreEncoded({ data }) as unknown as asn1js.BaseBlock;
}

/** Identifier and length octets of a `block` (a fresh, empty asn1js block) holding `length` content octets, as asn1js encodes them. */
function headerOf(block: asn1js.BaseBlock, length: number): Uint8Array {
  block.lenBlock.length = length;
  const id = new Uint8Array(block.idBlock.toBER(false));
  const len = new Uint8Array(block.lenBlock.toBER(false));
  if (block.lenBlock.error) throw new YinxinError('internal', `asn1js cannot encode a length of ${length}: ${block.lenBlock.error}`);
  const header = new Uint8Array(id.length + len.length);
  header.set(id);
  header.set(len, id.length);
  return header;
}

const sequenceHeaders = new Map<number, Uint8Array>();
function sequenceHeader(length: number): Uint8Array {
  let header = sequenceHeaders.get(length);
  if (!header) {
    header = headerOf(new asn1js.Sequence(), length);
    if (length < 65536) sequenceHeaders.set(length, header);
  }
  return header;
}

const integerHeaders = new Map<number, Uint8Array>();
function integerHeader(length: number): Uint8Array {
  let header = integerHeaders.get(length);
  if (!header) {
    header = headerOf(new asn1js.Integer(), length);
    integerHeaders.set(length, header);
  }
  return header;
}

const MIN_TIME_MS = new Date('0001-01-01T00:00:00Z').getTime();
const MAX_TIME_MS = new Date('9999-12-31T23:59:59Z').getTime();

/** Milliseconds since the epoch, truncated to the second: s4.1.2.5.2 forbids fractional seconds. */
function wholeSecondsMs(d: Date, what: string): number {
  const ms = d instanceof Date ? d.getTime() : NaN;
  if (!Number.isFinite(ms)) throw invalid(`${what} is not a valid date`);
  if (ms < MIN_TIME_MS || ms > MAX_TIME_MS) throw invalid(`${what} is outside the years 1-9999 a GeneralizedTime can carry`);
  return Math.floor(ms / 1000) * 1000;
}

function wholeSeconds(d: Date, what: string): Date {
  return new Date(wholeSecondsMs(d, what));
}

/** s5.1.2.4 / s4.1.2.5: UTCTime through 2049, GeneralizedTime for 2050 on (and before 1950). */
function encodeTime(d: Date): Uint8Array {
  const year = d.getUTCFullYear();
  return year >= 1950 && year < 2050 ? ber(new asn1js.UTCTime({ valueDate: d })) : ber(new asn1js.GeneralizedTime({ valueDate: d }));
}

function extension(extnID: string, critical: boolean, value: asn1js.AsnType | pkijs.PkiObject): pkijs.Extension {
  const valueDer = value instanceof pkijs.PkiObject ? value.toSchema().toBER(false) : value.toBER(false);
  return new pkijs.Extension({ extnID, critical, extnValue: valueDer });
}

function nonNegativeInteger(n: bigint, what: string): asn1js.Integer {
  if (typeof n !== 'bigint' || n < 0n) throw invalid(`${what} must be a non-negative bigint`);
  // s5.2.3: conforming CAs MUST NOT use CRLNumber values longer than 20 octets.
  if (n >= 1n << 159n) throw invalid(`${what} is longer than 20 octets (RFC 5280 s5.2.3)`);
  return asn1js.Integer.fromBigInt(n);
}

function minimalPositiveSerial(serial: Uint8Array, index: number): Uint8Array {
  if (!(serial instanceof Uint8Array) || serial.length === 0) throw invalid(`CRL entry ${index}: the serial number is empty`, { index });
  let i = 0;
  while (i < serial.length && serial[i] === 0) i++;
  if (i === serial.length) throw invalid(`CRL entry ${index}: the serial number is zero; serial numbers are positive (RFC 5280 s4.1.2.2)`, { index });
  if (serial[i] & 0x80) {
    const out = new Uint8Array(serial.length - i + 1);
    out.set(serial.subarray(i), 1);
    return out;
  }
  return i === 0 ? serial : serial.subarray(i);
}

/**
 * Encodes and signs a CRL. Entries are consumed once, in order (a generator streaming from the
 * store is fine). Throws 'validation-failed' for bad parameters (nextUpdate not after thisUpdate,
 * unknown reason code, removeFromCRL outside a delta CRL, zero serial, ...).
 */
export async function encodeCrl(params: CrlParameters): Promise<Uint8Array> {
  const { signer } = params;
  const thisUpdate = wholeSeconds(params.thisUpdate, 'thisUpdate');
  const nextUpdate = wholeSeconds(params.nextUpdate, 'nextUpdate');
  if (nextUpdate <= thisUpdate) throw invalid('nextUpdate must be later than thisUpdate (RFC 5280 s5.1.2.5)');
  checkDer(params.issuerName, 'issuerName');
  if (!(params.authorityKeyId instanceof Uint8Array) || params.authorityKeyId.length === 0) throw invalid('authorityKeyId is empty');

  const crlNumber = nonNegativeInteger(params.crlNumber, 'crlNumber');
  const isDelta = params.baseCrlNumber !== undefined;
  const extensions = [
    extension(OID_AUTHORITY_KEY_IDENTIFIER, false, new pkijs.AuthorityKeyIdentifier({
      keyIdentifier: new asn1js.OctetString({ valueHex: params.authorityKeyId }),
    })),
    extension(OID_CRL_NUMBER, false, crlNumber),
  ];
  if (isDelta) {
    if (params.baseCrlNumber! >= params.crlNumber) throw invalid('baseCrlNumber must be lower than crlNumber: a delta CRL follows its base (RFC 5280 s5.2.4)');
    extensions.push(extension(OID_DELTA_CRL_INDICATOR, true, nonNegativeInteger(params.baseCrlNumber!, 'baseCrlNumber')));
  }
  if (params.issuingDistributionPoint) {
    const idp = params.issuingDistributionPoint;
    checkUri(idp.uri, 'issuingDistributionPoint.uri');
    if (idp.onlyContainsUserCerts && idp.onlyContainsAttributeCerts) {
      throw invalid('a CRL cannot be limited to both user and attribute certificates (RFC 5280 s5.2.5)');
    }
    extensions.push(extension(OID_ISSUING_DISTRIBUTION_POINT, true, new pkijs.IssuingDistributionPoint({
      distributionPoint: [new pkijs.GeneralName({ type: 6, value: idp.uri })],
      onlyContainsUserCerts: idp.onlyContainsUserCerts === true,
      onlyContainsAttributeCerts: idp.onlyContainsAttributeCerts === true,
    })));
  }

  if (params.freshestCrlUri !== undefined) {
    if (isDelta) throw invalid('a delta CRL cannot carry a Freshest CRL extension (RFC 5280 s5.2.6)');
    checkUri(params.freshestCrlUri, 'freshestCrlUri');
    extensions.push(extension(OID_FRESHEST_CRL, false, new pkijs.CRLDistributionPoints({
      distributionPoints: [new pkijs.DistributionPoint({ distributionPoint: [new pkijs.GeneralName({ type: 6, value: params.freshestCrlUri })] })],
    })));
  }

  const signatureAlgorithm = signatureAlgorithmDer(signer.scheme);
  const revoked = encodeRevokedCertificates(params.entries, isDelta);

  const tbsCertList = ber(new asn1js.Sequence({
    value: [
      new asn1js.Integer({ value: 1 }), // v2, required when extensions are present (s5.1.2.1)
      raw(signatureAlgorithm),
      raw(params.issuerName),
      raw(encodeTime(thisUpdate)),
      raw(encodeTime(nextUpdate)),
      // s5.1.2.6: when there are no revoked certificates, the list MUST be absent.
      ...(revoked ? [raw(revoked)] : []),
      new asn1js.Constructed({
        idBlock: { tagClass: 3, tagNumber: 0 },
        value: [new pkijs.Extensions({ extensions }).toSchema()],
      }),
    ],
  }));

  const signature = await signer.sign(tbsCertList);
  return ber(new asn1js.Sequence({
    value: [raw(tbsCertList), raw(signatureAlgorithm), new asn1js.BitString({ valueHex: signature })],
  }));
}

function checkUri(uri: unknown, what: string): void {
  if (typeof uri !== 'string' || !/^[a-z][a-z0-9+.-]*:\S+$/i.test(uri) || /[^\x21-\x7e]/.test(uri)) {
    throw invalid(`${what} '${String(uri)}' is not an ASCII URI`);
  }
}

function checkDer(der: Uint8Array, what: string): void {
  if (!(der instanceof Uint8Array) || der.length === 0) throw invalid(`${what} is empty`);
  const decoded = asn1js.fromBER(der);
  if (decoded.offset !== der.length || decoded.result.error || !(decoded.result instanceof asn1js.Sequence)) {
    throw invalid(`${what} is not a DER Name`);
  }
}

/** Bytes appended in chunks, so a million small pieces need neither a million buffers nor O(n^2) copying. */
class ChunkedWriter {
  #chunks: Uint8Array[] = [];
  #current = new Uint8Array(1 << 20);
  #used = 0;
  length = 0;

  write(bytes: Uint8Array): void {
    if (this.#used + bytes.length > this.#current.length) {
      this.#chunks.push(this.#current.subarray(0, this.#used));
      this.#current = new Uint8Array(Math.max(1 << 20, bytes.length));
      this.#used = 0;
    }
    this.#current.set(bytes, this.#used);
    this.#used += bytes.length;
    this.length += bytes.length;
  }

  /** All bytes written, after `prefix`. */
  concat(prefix: Uint8Array = new Uint8Array(0)): Uint8Array {
    const out = new Uint8Array(prefix.length + this.length);
    out.set(prefix);
    let at = prefix.length;
    for (const c of [...this.#chunks, this.#current.subarray(0, this.#used)]) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

const UTC_TIME_HEADER = headerOf(new asn1js.UTCTime(), 13);
const GENERALIZED_TIME_HEADER = headerOf(new asn1js.GeneralizedTime(), 15);

/**
 * The DER of a whole-second Time, byte for byte what encodeTime (asn1js' UTCTime/GeneralizedTime
 * from a Date) gives, at a tenth of the cost: asn1js' identifier and length octets, then the
 * ASCII digits YYMMDDHHMMSSZ / YYYYMMDDHHMMSSZ (s4.1.2.5.1/2). The tests compare the two.
 */
function encodeTimeFast(ms: number, generalizedOnly: boolean): Uint8Array {
  const d = new Date(ms);
  const year = d.getUTCFullYear();
  const generalized = generalizedOnly || year < 1950 || year >= 2050;
  const header = generalized ? GENERALIZED_TIME_HEADER : UTC_TIME_HEADER;
  const out = new Uint8Array(header.length + (generalized ? 15 : 13));
  out.set(header);
  let i = header.length;
  const two = (n: number) => {
    out[i++] = 0x30 + ((n / 10) | 0);
    out[i++] = 0x30 + (n % 10);
  };
  if (generalized) two((year / 100) | 0);
  two(year % 100);
  two(d.getUTCMonth() + 1);
  two(d.getUTCDate());
  two(d.getUTCHours());
  two(d.getUTCMinutes());
  two(d.getUTCSeconds());
  out[i] = 0x5a; // 'Z'
  return out;
}

/**
 * The DER of the revokedCertificates SEQUENCE OF, or null when there are no entries. A million
 * asn1js object trees (one per entry) cost ~15 us each, too slow for the budget, so an entry is
 * joined from asn1js encodings: identifier+length octets for each length (memoized), the
 * serial's content octets (what asn1js.Integer would carry), the Time (encodeTimeFast), and the
 * reasonCode / invalidityDate extensions encoded once by pkijs (the invalidity date's prefix once,
 * its GeneralizedTime per entry). The tests check every entry equals pkijs' own re-encoding.
 */
function encodeRevokedCertificates(entries: Iterable<CrlEntry>, isDelta: boolean): Uint8Array | null {
  // s5.3.1: reasonCode is non-critical; its 9 encodings are made once.
  const reasonExtensions = new Map<number, Uint8Array>();
  for (const code of reasonNamesByCode.keys()) {
    if (code !== 0) reasonExtensions.set(code, ber(extension(OID_REASON_CODE, false, new asn1js.Enumerated({ value: code })).toSchema()));
  }
  // s5.3.2: invalidityDate is always GeneralizedTime (17 octets whole-second), non-critical.
  // Everything before the GeneralizedTime is the same for every entry: cut it from a pkijs encoding.
  const sampleInvalidity = ber(extension(OID_INVALIDITY_DATE, false, new asn1js.GeneralizedTime({ valueDate: new Date(0) })).toSchema());
  const invalidityPrefix = sampleInvalidity.subarray(0, sampleInvalidity.length - 17);

  const out = new ChunkedWriter();
  let index = 0;
  for (const entry of entries) {
    const serial = minimalPositiveSerial(entry.serial, index);
    const serialHeader = integerHeader(serial.length);
    const revocationDate = encodeTimeFast(wholeSecondsMs(entry.revocationDate, `CRL entry ${index}: revocationDate`), false);
    let reasonExtension: Uint8Array | undefined;
    if (entry.reason !== undefined && entry.reason !== 0) {
      reasonExtension = reasonExtensions.get(entry.reason);
      if (!reasonExtension) {
        throw invalid(`CRL entry ${index}: ${entry.reason} is not a CRLReason code (RFC 5280 s5.3.1)`, { index, found: entry.reason });
      }
      if (entry.reason === crlEntryReasons.removeFromCRL && !isDelta) {
        throw invalid(`CRL entry ${index}: removeFromCRL may only appear in a delta CRL (RFC 5280 s5.3.1)`, { index });
      }
    }
    const invalidityTime = entry.invalidityDate === undefined ? undefined
      : encodeTimeFast(wholeSecondsMs(entry.invalidityDate, `CRL entry ${index}: invalidityDate`), true);

    let extensionsLength = 0;
    let extensionsHeader: Uint8Array | undefined;
    if (reasonExtension || invalidityTime) {
      const inner = (reasonExtension?.length ?? 0) + (invalidityTime ? invalidityPrefix.length + invalidityTime.length : 0);
      extensionsHeader = sequenceHeader(inner);
      extensionsLength = extensionsHeader.length + inner;
    }
    out.write(sequenceHeader(serialHeader.length + serial.length + revocationDate.length + extensionsLength));
    out.write(serialHeader);
    out.write(serial);
    out.write(revocationDate);
    if (extensionsHeader) {
      out.write(extensionsHeader);
      if (reasonExtension) out.write(reasonExtension);
      if (invalidityTime) {
        out.write(invalidityPrefix);
        out.write(invalidityTime);
      }
    }
    index++;
  }
  if (index === 0) return null;
  return out.concat(sequenceHeader(out.length));
}
