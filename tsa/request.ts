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
