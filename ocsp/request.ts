/**
 * Parsing OCSP requests (RFC 6960 s4.1.1) from untrusted bytes, strictly and without throwing
 * anything but YinxinError:
 *
 *   OCSPRequest ::= SEQUENCE { tbsRequest TBSRequest, optionalSignature [0] EXPLICIT Signature OPTIONAL }
 *   TBSRequest  ::= SEQUENCE { version [0] EXPLICIT Version DEFAULT v1, requestorName [1] EXPLICIT GeneralName OPTIONAL,
 *                              requestList SEQUENCE OF Request, requestExtensions [2] EXPLICIT Extensions OPTIONAL }
 *   Request     ::= SEQUENCE { reqCert CertID, singleRequestExtensions [0] EXPLICIT Extensions OPTIONAL }
 *   CertID      ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier, issuerNameHash OCTET STRING,
 *                              issuerKeyHash OCTET STRING, serialNumber CertificateSerialNumber }
 *   Signature   ::= SEQUENCE { signatureAlgorithm AlgorithmIdentifier, signature BIT STRING,
 *                              certs [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL }
 *
 * Each CertID is kept as the exact bytes received: the response repeats them (a client matches
 * its CertID byte for byte, NULL hash parameters or absent ones alike).
 */
import * as asn1js from 'asn1js';
import { YinxinError } from '../common/errors.ts';

export const OCSP_OID = {
  basic: '1.3.6.1.5.5.7.48.1.1',
  nonce: '1.3.6.1.5.5.7.48.1.2',
  acceptableResponses: '1.3.6.1.5.5.7.48.1.4',
  extendedRevoke: '1.3.6.1.5.5.7.48.1.9',
  preferredSignatureAlgorithms: '1.3.6.1.5.5.7.48.1.8',
} as const;

/** Hash algorithms accepted in a CertID: SHA-1 (RFC 5019's default) and the SHA-2 family. */
export const CERT_ID_HASHES: Record<string, { name: 'sha1' | 'sha256' | 'sha384' | 'sha512'; size: number }> = {
  '1.3.14.3.2.26': { name: 'sha1', size: 20 },
  '2.16.840.1.101.3.4.2.1': { name: 'sha256', size: 32 },
  '2.16.840.1.101.3.4.2.2': { name: 'sha384', size: 48 },
  '2.16.840.1.101.3.4.2.3': { name: 'sha512', size: 64 },
};

export interface RequestedCertId {
  /** The CertID's DER, as received. */
  der: Uint8Array;
  hashOid: string;
  issuerNameHash: Uint8Array;
  issuerKeyHash: Uint8Array;
  /** Lower-case hex of the serialNumber INTEGER's content octets (the CA's store key). */
  serial: string;
}

export interface RequestSignature {
  algorithmOid: string;
  /** DER of the AlgorithmIdentifier's parameters, when present. */
  algorithmParams?: Uint8Array;
  signature: Uint8Array;
  certificates: Uint8Array[];
}

export interface ParsedOcspRequest {
  /** DER of TBSRequest (what a request signature covers). */
  tbs: Uint8Array;
  certIds: RequestedCertId[];
  /** The whole nonce Extension's DER, repeated as is in the response (RFC 8954 s2.1). */
  nonceExtension?: Uint8Array;
  signature?: RequestSignature;
}

export interface ParseLimits {
  /** Most CertIDs accepted in one request (default 32). */
  maxCertIds?: number;
  /** RFC 8954 s2.1: nonces of 1 to 32 octets (default 32). */
  maxNonceLength?: number;
}

function malformed(message: string): YinxinError {
  return new YinxinError('malformed-der', message);
}

function isContext(block: asn1js.BaseBlock | undefined, tagNumber: number): block is asn1js.Constructed {
  return block !== undefined && block.idBlock.tagClass === 3 && block.idBlock.tagNumber === tagNumber && block.idBlock.isConstructed;
}

function children(block: asn1js.BaseBlock): asn1js.BaseBlock[] {
  const value = (block.valueBlock as { value?: unknown }).value;
  return Array.isArray(value) ? (value as asn1js.BaseBlock[]) : [];
}

function bytesOf(block: asn1js.BaseBlock): Uint8Array {
  return new Uint8Array(block.valueBeforeDecodeView);
}

function hex(u: Uint8Array): string {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString('hex');
}

function parseCertId(block: asn1js.BaseBlock): RequestedCertId {
  if (!(block instanceof asn1js.Sequence)) throw malformed('a Request does not start with a CertID SEQUENCE');
  const [algorithm, nameHash, keyHash, serial, extra] = children(block);
  if (extra !== undefined || !(algorithm instanceof asn1js.Sequence) || !(nameHash instanceof asn1js.OctetString)
    || !(keyHash instanceof asn1js.OctetString) || !(serial instanceof asn1js.Integer)) {
    throw malformed('a CertID is not SEQUENCE { AlgorithmIdentifier, OCTET STRING, OCTET STRING, INTEGER }');
  }
  const [oid, params, more] = children(algorithm);
  if (!(oid instanceof asn1js.ObjectIdentifier) || more !== undefined || (params !== undefined && !(params instanceof asn1js.Null))) {
    throw malformed('the CertID hash AlgorithmIdentifier is malformed');
  }
  const hashOid = oid.valueBlock.toString();
  const hash = CERT_ID_HASHES[hashOid];
  if (!hash) throw new YinxinError('unsupported-algorithm', `CertID hash algorithm ${hashOid} is not supported (SHA-1, SHA-256, SHA-384, SHA-512 are)`, { algorithm: hashOid });
  const issuerNameHash = nameHash.valueBlock.valueHexView;
  const issuerKeyHash = keyHash.valueBlock.valueHexView;
  if (issuerNameHash.length !== hash.size || issuerKeyHash.length !== hash.size) {
    throw malformed(`a CertID hash has the wrong length for ${hash.name}`);
  }
  const serialBytes = serial.valueBlock.valueHexView;
  if (serialBytes.length === 0 || serialBytes.length > 32) throw malformed('a CertID serial number is empty or longer than 32 octets');
  return { der: bytesOf(block), hashOid, issuerNameHash: new Uint8Array(issuerNameHash), issuerKeyHash: new Uint8Array(issuerKeyHash), serial: hex(serialBytes) };
}

interface ParsedExtension {
  oid: string;
  critical: boolean;
  value: Uint8Array;
  der: Uint8Array;
}

/** Extensions ::= SEQUENCE SIZE (1..MAX) OF Extension, inside an EXPLICIT context tag. */
function parseExtensions(tagged: asn1js.Constructed): ParsedExtension[] {
  const [list, extra] = children(tagged);
  if (!(list instanceof asn1js.Sequence) || extra !== undefined) throw malformed('Extensions is not a SEQUENCE');
  const out: ParsedExtension[] = [];
  const seen = new Set<string>();
  for (const ext of children(list)) {
    const parts = children(ext);
    if (!(ext instanceof asn1js.Sequence) || parts.length < 2 || parts.length > 3) throw malformed('an Extension is not SEQUENCE { OID, [BOOLEAN,] OCTET STRING }');
    const [oid, second, third] = parts;
    const critical = parts.length === 3 ? second : undefined;
    const value = parts.length === 3 ? third : second;
    if (!(oid instanceof asn1js.ObjectIdentifier) || !(value instanceof asn1js.OctetString) || (critical !== undefined && !(critical instanceof asn1js.Boolean))) {
      throw malformed('an Extension is not SEQUENCE { OID, [BOOLEAN,] OCTET STRING }');
    }
    const id = oid.valueBlock.toString();
    // RFC 5280 s4.2 (which RFC 6960 s4.4 follows): an extension appears at most once.
    if (seen.has(id)) throw malformed(`extension ${id} appears twice`);
    seen.add(id);
    out.push({ oid: id, critical: critical instanceof asn1js.Boolean ? critical.valueBlock.value : false, value: new Uint8Array(value.valueBlock.valueHexView), der: bytesOf(ext) });
  }
  return out;
}

/** Extensions we understand at request level; an unknown critical one cannot be honoured (s4.4). */
const knownRequestExtensions = new Set<string>([OCSP_OID.nonce, OCSP_OID.acceptableResponses, OCSP_OID.preferredSignatureAlgorithms]);

function checkNonce(ext: ParsedExtension, maxLength: number): void {
  // RFC 8954 s2.1: the extnValue holds an OCTET STRING of 1..32 octets. Some old clients put the
  // bare random bytes there; the same bounds apply to those.
  let length = ext.value.length;
  const inner = asn1js.fromBER(ext.value);
  if (inner.offset === ext.value.length && inner.result instanceof asn1js.OctetString && !inner.result.idBlock.isConstructed) {
    length = inner.result.valueBlock.valueHexView.length;
  }
  if (length < 1 || length > maxLength) {
    throw new YinxinError('validation-failed', `the nonce is ${length} octets; RFC 8954 allows 1 to ${maxLength}`, { field: 'nonce', length });
  }
}

/** Parses an OCSPRequest. Throws YinxinError ('malformed-der', 'unsupported-algorithm', 'validation-failed') and nothing else. */
export function parseOcspRequest(der: Uint8Array, limits: ParseLimits = {}): ParsedOcspRequest {
  try {
    return parse(der, limits);
  } catch (e) {
    if (e instanceof YinxinError) throw e;
    // asn1js may throw on pathological input; every such case is a malformed request.
    throw malformed(`the request could not be decoded: ${(e as Error)?.message ?? String(e)}`);
  }
}

function parse(der: Uint8Array, limits: ParseLimits): ParsedOcspRequest {
  const maxCertIds = limits.maxCertIds ?? 32;
  if (der.length === 0) throw malformed('the request is empty');
  const decoded = asn1js.fromBER(der);
  if (decoded.offset === -1 || decoded.result.error) throw malformed(`the request is not DER: ${decoded.result.error || 'decoding failed'}`);
  if (decoded.offset !== der.length) throw malformed('the request has bytes after the OCSPRequest');
  const root = decoded.result;
  if (!(root instanceof asn1js.Sequence)) throw malformed('the request is not a SEQUENCE');
  const [tbs, signatureBlock, extra] = children(root);
  if (!(tbs instanceof asn1js.Sequence) || extra !== undefined || (signatureBlock !== undefined && !isContext(signatureBlock, 0))) {
    throw malformed('the request is not SEQUENCE { TBSRequest, [0] Signature OPTIONAL }');
  }

  const fields = children(tbs);
  let i = 0;
  if (isContext(fields[i], 0)) {
    const [version] = children(fields[i]);
    if (!(version instanceof asn1js.Integer) || version.valueBlock.valueDec !== 0) throw malformed('only OCSP request version 1 (0) is defined');
    i++;
  }
  if (isContext(fields[i], 1)) i++; // requestorName: informational only
  const requestList = fields[i++];
  if (!(requestList instanceof asn1js.Sequence)) throw malformed('the TBSRequest has no requestList SEQUENCE');
  let extensions: ParsedExtension[] = [];
  if (fields[i] !== undefined) {
    if (!isContext(fields[i], 2)) throw malformed('unexpected field after the requestList');
    extensions = parseExtensions(fields[i++] as asn1js.Constructed);
  }
  if (fields[i] !== undefined) throw malformed('unexpected field at the end of the TBSRequest');

  const requests = children(requestList);
  if (requests.length === 0) throw malformed('the requestList is empty');
  if (requests.length > maxCertIds) throw new YinxinError('validation-failed', `the request asks about ${requests.length} certificates; at most ${maxCertIds} are answered at once`, { field: 'requestList' });
  const certIds: RequestedCertId[] = [];
  for (const request of requests) {
    const [certId, singleExtensions, more] = children(request);
    if (!(request instanceof asn1js.Sequence) || more !== undefined || (singleExtensions !== undefined && !isContext(singleExtensions, 0))) {
      throw malformed('a Request is not SEQUENCE { CertID, [0] Extensions OPTIONAL }');
    }
    if (singleExtensions) {
      for (const ext of parseExtensions(singleExtensions as asn1js.Constructed)) {
        if (ext.critical) throw new YinxinError('validation-failed', `critical single request extension ${ext.oid} is not supported`, { extension: ext.oid });
      }
    }
    certIds.push(parseCertId(certId));
  }

  const parsed: ParsedOcspRequest = { tbs: bytesOf(tbs), certIds };
  for (const ext of extensions) {
    if (ext.oid === OCSP_OID.nonce) {
      checkNonce(ext, limits.maxNonceLength ?? 32);
      parsed.nonceExtension = ext.der;
    } else if (ext.critical && !knownRequestExtensions.has(ext.oid)) {
      throw new YinxinError('validation-failed', `critical request extension ${ext.oid} is not supported`, { extension: ext.oid });
    }
  }
  if (signatureBlock) parsed.signature = parseSignature(signatureBlock as asn1js.Constructed);
  return parsed;
}

function parseSignature(tagged: asn1js.Constructed): RequestSignature {
  const [sig, extra] = children(tagged);
  const [algorithm, value, certs, more] = sig ? children(sig) : [];
  if (!(sig instanceof asn1js.Sequence) || extra !== undefined || more !== undefined || !(algorithm instanceof asn1js.Sequence)
    || !(value instanceof asn1js.BitString) || (certs !== undefined && !isContext(certs, 0))) {
    throw malformed('the request Signature is not SEQUENCE { AlgorithmIdentifier, BIT STRING, [0] certs OPTIONAL }');
  }
  const [oid, params] = children(algorithm);
  if (!(oid instanceof asn1js.ObjectIdentifier)) throw malformed('the request signature algorithm is malformed');
  const certificates: Uint8Array[] = [];
  if (certs) {
    const [list] = children(certs);
    if (!(list instanceof asn1js.Sequence)) throw malformed('the request signature certs are not a SEQUENCE');
    for (const c of children(list)) {
      if (!(c instanceof asn1js.Sequence)) throw malformed('a request signature certificate is not a SEQUENCE');
      certificates.push(bytesOf(c));
    }
  }
  if (value.valueBlock.unusedBits !== 0) throw malformed('the request signature BIT STRING has unused bits');
  const out: RequestSignature = { algorithmOid: oid.valueBlock.toString(), signature: new Uint8Array(value.valueBlock.valueHexView), certificates };
  if (params !== undefined) out.algorithmParams = bytesOf(params);
  return out;
}
