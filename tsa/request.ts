/**
 * Reading an untrusted TimeStampReq (RFC 3161 s2.4.1). A small table of checks, each throwing a
 * YinxinError whose code failure.ts turns into the failInfo the RFC names:
 *   not DER / truncated / trailing bytes / wrong shape -> malformed-der        (badDataFormat)
 *   hash algorithm unknown or not accepted             -> unsupported-algorithm (badAlg)
 *   imprint length does not fit the algorithm          -> validation-failed    (badDataFormat)
 *   version other than 1, absurd nonce                 -> bad-request          (badRequest)
 *   any extension (s2.4.1: the TSA understands none)   -> unaccepted-extension (unacceptedExtension)
 * Policy acceptance is the authority's decision, not the parser's.
 */
import * as asn1js from 'asn1js';
import { YinxinError } from '../common/errors.ts';
import { OID } from '../hsm/algorithms.ts';

export type TsaHashName = 'SHA-1' | 'SHA-256' | 'SHA-384' | 'SHA-512' | 'SHA3-256' | 'SHA3-384' | 'SHA3-512' | 'SM3';

export interface TsaHashInfo {
  name: TsaHashName;
  oid: string;
  /** Digest length in octets. */
  length: number;
  /** node:crypto's name for it. */
  node: string;
}

export const TSA_HASHES: Record<TsaHashName, TsaHashInfo> = {
  'SHA-1': { name: 'SHA-1', oid: OID.sha1, length: 20, node: 'sha1' },
  'SHA-256': { name: 'SHA-256', oid: OID.sha256, length: 32, node: 'sha256' },
  'SHA-384': { name: 'SHA-384', oid: OID.sha384, length: 48, node: 'sha384' },
  'SHA-512': { name: 'SHA-512', oid: OID.sha512, length: 64, node: 'sha512' },
  'SHA3-256': { name: 'SHA3-256', oid: OID.sha3_256, length: 32, node: 'sha3-256' },
  'SHA3-384': { name: 'SHA3-384', oid: OID.sha3_384, length: 48, node: 'sha3-384' },
  'SHA3-512': { name: 'SHA3-512', oid: OID.sha3_512, length: 64, node: 'sha3-512' },
  // GM/T 0004-2012; OID from GM/T 0006. Accepted only when configured.
  'SM3': { name: 'SM3', oid: '1.2.156.10197.1.401', length: 32, node: 'sm3' },
};

export const DEFAULT_TSA_HASHES: readonly TsaHashName[] = ['SHA-256', 'SHA-384', 'SHA-512', 'SHA3-256'];

const hashByOid = new Map(Object.values(TSA_HASHES).map((h) => [h.oid, h]));

export function tsaHashByOid(oid: string): TsaHashInfo | undefined {
  return hashByOid.get(oid);
}

export interface ParsedQuery {
  hash: TsaHashInfo;
  /** The request's AlgorithmIdentifier carried NULL parameters (openssl does) rather than none. */
  hashParamsNull: boolean;
  hashedMessage: Uint8Array;
  policy: string | undefined;
  /** Two's-complement octets of the nonce, echoed verbatim. */
  nonce: Uint8Array | undefined;
  certReq: boolean;
}

/** Nonces are "large random numbers" (s2.4.1); 64 octets is far above any client's and keeps tokens small. */
const MAX_NONCE_OCTETS = 64;

function malformed(what: string): YinxinError {
  return new YinxinError('malformed-der', `the time-stamp query is not a valid TimeStampReq: ${what}`);
}

function isUniversal(block: asn1js.AsnType, tagNumber: number): boolean {
  const id = (block as asn1js.BaseBlock).idBlock;
  return id !== undefined && id.tagClass === 1 && id.tagNumber === tagNumber;
}

function primitiveOctets(block: asn1js.BaseBlock, what: string): Uint8Array {
  if (block.idBlock.isConstructed) throw malformed(`${what} must be primitive`);
  const view = (block.valueBlock as unknown as { valueHexView: Uint8Array }).valueHexView;
  return new Uint8Array(view);
}

function objectIdentifier(block: asn1js.AsnType | undefined, what: string): string {
  if (!block || !(block instanceof asn1js.ObjectIdentifier) || !isUniversal(block, 6)) throw malformed(`${what} must be an OBJECT IDENTIFIER`);
  const oid = block.valueBlock.toString();
  if (!/^\d+(\.\d+)+$/.test(oid)) throw malformed(`${what} is not a valid OBJECT IDENTIFIER`);
  return oid;
}

const UNIVERSAL_SEQUENCE = 16;
const UNIVERSAL_INTEGER = 2;
const UNIVERSAL_BOOLEAN = 1;
const UNIVERSAL_OCTET_STRING = 4;
const UNIVERSAL_NULL = 5;

export function parseTimeStampQuery(der: Uint8Array, acceptedHashes: ReadonlySet<TsaHashName>): ParsedQuery {
  return readCanonicalQuery(der, acceptedHashes) ?? parseTimeStampQueryFull(der, acceptedHashes);
}

/** The full reader alone, without the fast path (for the tests that compare the two). */
export function parseTimeStampQueryFull(der: Uint8Array, acceptedHashes: ReadonlySet<TsaHashName>): ParsedQuery {
  try {
    return readQuery(der, acceptedHashes);
  } catch (e) {
    if (e instanceof YinxinError) throw e;
    throw new YinxinError('malformed-der', 'the time-stamp query is not a valid TimeStampReq', undefined, { cause: e });
  }
}

function readQuery(der: Uint8Array, acceptedHashes: ReadonlySet<TsaHashName>): ParsedQuery {
  if (der.length === 0) throw malformed('empty body');
  let parsed: ReturnType<typeof asn1js.fromBER>;
  try {
    parsed = asn1js.fromBER(der);
  } catch {
    // asn1js throws (rather than reporting) on some malformed values, e.g. a GeneralizedTime that is not a date.
    throw malformed('undecodable');
  }
  if (parsed.offset === -1) throw malformed(parsed.result.error || 'undecodable');
  if (parsed.offset !== der.length) throw malformed('trailing bytes after the structure');
  const root = parsed.result;
  if (!(root instanceof asn1js.Sequence) || !isUniversal(root, UNIVERSAL_SEQUENCE)) throw malformed('not a SEQUENCE');
  const fields = root.valueBlock.value;
  let i = 0;

  // version INTEGER { v1(1) }
  const version = fields[i++];
  if (!version || !(version instanceof asn1js.Integer) || !isUniversal(version, UNIVERSAL_INTEGER)) throw malformed('version must be an INTEGER');
  const versionOctets = primitiveOctets(version, 'version');
  if (versionOctets.length !== 1 || versionOctets[0] !== 1) throw new YinxinError('bad-request', 'only TimeStampReq version 1 is supported');

  // messageImprint MessageImprint
  const imprint = fields[i++];
  if (!imprint || !(imprint instanceof asn1js.Sequence) || !isUniversal(imprint, UNIVERSAL_SEQUENCE)) throw malformed('messageImprint must be a SEQUENCE');
  const [algorithm, hashedMessageBlock, ...imprintRest] = imprint.valueBlock.value;
  if (imprintRest.length) throw malformed('messageImprint has extra fields');
  if (!algorithm || !(algorithm instanceof asn1js.Sequence) || !isUniversal(algorithm, UNIVERSAL_SEQUENCE)) throw malformed('hashAlgorithm must be an AlgorithmIdentifier');
  const [algorithmOid, algorithmParams, ...algorithmRest] = algorithm.valueBlock.value;
  const oid = objectIdentifier(algorithmOid, 'hashAlgorithm.algorithm');
  if (algorithmRest.length) throw malformed('hashAlgorithm has extra fields');
  let hashParamsNull = false;
  if (algorithmParams !== undefined) {
    if (!isUniversal(algorithmParams, UNIVERSAL_NULL) || (algorithmParams as asn1js.BaseBlock).idBlock.isConstructed) {
      throw new YinxinError('unsupported-algorithm', `hash algorithm ${oid} with parameters other than NULL is not supported`);
    }
    hashParamsNull = true;
  }
  const hash = tsaHashByOid(oid);
  if (!hash || !acceptedHashes.has(hash.name)) {
    throw new YinxinError('unsupported-algorithm', `hash algorithm ${hash ? hash.name : oid} is not accepted by this TSA`, {
      accepted: [...acceptedHashes],
    });
  }
  if (!hashedMessageBlock || !isUniversal(hashedMessageBlock, UNIVERSAL_OCTET_STRING)) throw malformed('hashedMessage must be an OCTET STRING');
  const hashedMessage = primitiveOctets(hashedMessageBlock as asn1js.BaseBlock, 'hashedMessage');
  if (hashedMessage.length !== hash.length) {
    throw new YinxinError('validation-failed', `a ${hash.name} imprint is ${hash.length} octets, not ${hashedMessage.length}`);
  }

  // reqPolicy TSAPolicyId OPTIONAL
  let policy: string | undefined;
  if (fields[i] && isUniversal(fields[i], 6)) policy = objectIdentifier(fields[i++], 'reqPolicy');

  // nonce INTEGER OPTIONAL
  let nonce: Uint8Array | undefined;
  if (fields[i] && isUniversal(fields[i], UNIVERSAL_INTEGER)) {
    nonce = primitiveOctets(fields[i++] as asn1js.BaseBlock, 'nonce');
    if (nonce.length === 0) throw malformed('empty nonce');
    if (nonce.length > MAX_NONCE_OCTETS) throw new YinxinError('bad-request', `the nonce is longer than ${MAX_NONCE_OCTETS} octets`);
  }

  // certReq BOOLEAN DEFAULT FALSE
  let certReq = false;
  if (fields[i] && isUniversal(fields[i], UNIVERSAL_BOOLEAN)) {
    const octets = primitiveOctets(fields[i++] as asn1js.BaseBlock, 'certReq');
    if (octets.length !== 1) throw malformed('certReq must be one octet');
    certReq = octets[0] !== 0;
  }

  // extensions [0] IMPLICIT Extensions OPTIONAL
  const extensions = fields[i];
  if (extensions) {
    const id = (extensions as asn1js.BaseBlock).idBlock;
    if (id.tagClass === 3 && id.tagNumber === 0) {
      const oids = ((extensions as asn1js.Constructed).valueBlock?.value ?? []).map((ext) => {
        const first = ext instanceof asn1js.Sequence ? ext.valueBlock.value[0] : undefined;
        return first instanceof asn1js.ObjectIdentifier ? first.valueBlock.toString() : '?';
      });
      throw new YinxinError('unaccepted-extension', `this TSA understands no request extension (got ${oids.join(', ') || 'an empty list'})`, { extensions: oids });
    }
    throw malformed('unexpected field after messageImprint');
  }
  return { hash, hashParamsNull, hashedMessage, policy, nonce, certReq };
}

// ---------------------------------------------------------------------------------------------
// The fast path: almost every query is the same small DER shape (openssl, every client library),
// and decoding it with asn1js costs more than the rest of the request's encoding. This reader
// accepts only that canonical shape and returns undefined for anything else (BER, an unknown or
// unaccepted algorithm, extensions, any error), which the full reader above then decides, with
// its error messages. request.test.ts checks on thousands of generated and mutated queries that
// whenever this returns a result, the full reader returns the same one.

const hashByOidBytes = new Map(Object.values(TSA_HASHES).map((h) => [Buffer.from(oidContent(h.oid)).toString('latin1'), h]));

function oidContent(oid: string): number[] {
  const arcs = oid.split('.').map(Number);
  const out: number[] = [];
  const put = (n: number) => {
    const bytes = [n & 0x7f];
    for (n = Math.floor(n / 128); n > 0; n = Math.floor(n / 128)) bytes.unshift((n & 0x7f) | 0x80);
    out.push(...bytes);
  };
  put(arcs[0] * 40 + arcs[1]);
  for (const arc of arcs.slice(2)) put(arc);
  return out;
}

/** Dotted form of an OID's content octets, or undefined unless minimally encoded with arcs below 2^49. */
function dottedOid(der: Uint8Array, start: number, end: number): string | undefined {
  const arcs: number[] = [];
  let value = 0;
  let octets = 0;
  for (let i = start; i < end; i++) {
    const b = der[i];
    if (octets === 0 && b === 0x80) return undefined;
    if (++octets > 7) return undefined;
    value = value * 128 + (b & 0x7f);
    if ((b & 0x80) === 0) {
      if (arcs.length === 0) arcs.push(value < 40 ? 0 : value < 80 ? 1 : 2, value < 80 ? value % 40 : value - 80);
      else arcs.push(value);
      value = 0;
      octets = 0;
    }
  }
  return octets === 0 && arcs.length >= 2 ? arcs.join('.') : undefined;
}

/** Content bounds of the DER TLV at `at` with this one-octet tag; undefined unless its length is minimal and it ends by `end`. */
function tlv(der: Uint8Array, at: number, end: number, tag: number): { start: number; end: number } | undefined {
  if (at + 2 > end || der[at] !== tag) return undefined;
  let length = der[at + 1];
  let start = at + 2;
  if (length === 0x81) {
    length = der[at + 2];
    start = at + 3;
    if (length < 0x80) return undefined;
  } else if (length === 0x82) {
    length = (der[at + 2] << 8) | der[at + 3];
    start = at + 4;
    if (length < 0x100) return undefined;
  } else if (length >= 0x80) {
    return undefined;
  }
  return start + length <= end ? { start, end: start + length } : undefined;
}

export function readCanonicalQuery(der: Uint8Array, acceptedHashes: ReadonlySet<TsaHashName>): ParsedQuery | undefined {
  const request = tlv(der, 0, der.length, 0x30);
  if (!request || request.end !== der.length) return undefined;
  const version = tlv(der, request.start, request.end, 0x02);
  if (!version || version.end - version.start !== 1 || der[version.start] !== 1) return undefined;
  const imprint = tlv(der, version.end, request.end, 0x30);
  if (!imprint) return undefined;
  const algorithm = tlv(der, imprint.start, imprint.end, 0x30);
  if (!algorithm) return undefined;
  const oid = tlv(der, algorithm.start, algorithm.end, 0x06);
  if (!oid) return undefined;
  let hashParamsNull = false;
  if (oid.end !== algorithm.end) {
    if (algorithm.end - oid.end !== 2 || der[oid.end] !== 0x05 || der[oid.end + 1] !== 0) return undefined;
    hashParamsNull = true;
  }
  const hash = hashByOidBytes.get(Buffer.from(der.buffer, der.byteOffset + oid.start, oid.end - oid.start).toString('latin1'));
  if (!hash || !acceptedHashes.has(hash.name)) return undefined;
  const message = tlv(der, algorithm.end, imprint.end, 0x04);
  if (!message || message.end !== imprint.end || message.end - message.start !== hash.length) return undefined;

  let at = imprint.end;
  let policy: string | undefined;
  const policyTlv = tlv(der, at, request.end, 0x06);
  if (policyTlv) {
    policy = dottedOid(der, policyTlv.start, policyTlv.end);
    if (policy === undefined) return undefined;
    at = policyTlv.end;
  }
  let nonce: Uint8Array | undefined;
  const nonceTlv = tlv(der, at, request.end, 0x02);
  if (nonceTlv) {
    const length = nonceTlv.end - nonceTlv.start;
    if (length === 0 || length > MAX_NONCE_OCTETS) return undefined;
    nonce = der.slice(nonceTlv.start, nonceTlv.end);
    at = nonceTlv.end;
  }
  let certReq = false;
  const certReqTlv = tlv(der, at, request.end, 0x01);
  if (certReqTlv) {
    if (certReqTlv.end - certReqTlv.start !== 1) return undefined;
    certReq = der[certReqTlv.start] !== 0;
    at = certReqTlv.end;
  }
  if (at !== request.end) return undefined;
  return { hash, hashParamsNull, hashedMessage: der.slice(message.start, message.end), policy, nonce, certReq };
}
