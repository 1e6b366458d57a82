/**
 * PKCS#10 certification requests (RFC 2986) from untrusted clients: parse, check that the
 * requester holds the private key (the self-signature, RFC 2986 s3 / RFC 4211 s4 "proof of
 * possession"), and reduce the key to a KeySpec the CA issues for. Signatures are checked with
 * node:crypto directly (no pkijs engine). Every failure is a YinxinError:
 *   'payload-too-large'      input over CSR_MAX_BYTES
 *   'malformed-der'          not PEM/DER, truncated, trailing bytes, not DER, not a CertificationRequest
 *   'unsupported-algorithm'  key or signature algorithm the CA does not issue for (the message names it)
 *   'bad-signature'          the self-signature does not verify
 */
import { createPublicKey, verify as nodeVerify, constants as cryptoConstants, type KeyObject } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { YinxinError } from '../common/errors.ts';
import { OID, hashNameFromOid } from '../hsm/algorithms.ts';
import type { HashName, KeySpec } from '../hsm/signer.ts';

export const CSR_MAX_BYTES = 64 * 1024;

export interface ParsedCsr {
  /** The CertificationRequest DER (PEM input decoded). */
  der: Uint8Array;
  subject: pkijs.RelativeDistinguishedNames;
  /** DER of the subject Name, byte for byte as requested. */
  subjectDer: Uint8Array;
  /** DER SubjectPublicKeyInfo, byte for byte as requested. */
  publicKeyInfo: Uint8Array;
  keySpec: KeySpec;
  /** The extensions of the PKCS#9 extensionRequest attribute, if any (RFC 2985 s5.4.2). */
  requestedExtensions?: pkijs.Extensions;
  /** dNSName entries of a requested subjectAltName, in order. */
  sanDns: string[];
  /** rfc822Name entries of a requested subjectAltName, in order. */
  sanEmail: string[];
}

const OID_EXTENSION_REQUEST = '1.2.840.113549.1.9.14';
const OID_SUBJECT_ALT_NAME = '2.5.29.17';

const knownUnsupportedKeys: Record<string, string> = {
  '1.2.840.10040.4.1': 'DSA',
  '1.2.840.10046.2.1': 'Diffie-Hellman',
  '1.3.101.110': 'X25519',
  '1.3.101.111': 'X448',
  '1.3.101.113': 'Ed448',
};
const knownCurves: Record<string, string> = {
  '1.3.132.0.10': 'secp256k1',
  '1.3.132.0.35': 'P-521 (secp521r1)',
  '1.2.840.10045.3.1.1': 'P-192 (prime192v1)',
  '1.3.132.0.33': 'P-224 (secp224r1)',
  '1.2.156.10197.1.301': 'SM2',
  '1.3.36.3.3.2.8.1.1.7': 'brainpoolP256r1',
};
const knownUnsupportedSignatures: Record<string, string> = {
  '1.2.840.113549.1.1.4': 'md5WithRSAEncryption',
  '1.2.840.113549.1.1.5': 'sha1WithRSAEncryption',
  '1.2.840.113549.1.1.14': 'sha224WithRSAEncryption',
  '1.2.840.10045.4.1': 'ecdsa-with-SHA1',
  '1.2.840.10045.4.3.1': 'ecdsa-with-SHA224',
  '1.2.840.10040.4.3': 'dsa-with-sha1',
  '2.16.840.1.101.3.4.3.2': 'dsa-with-sha256',
  '1.2.156.10197.1.501': 'SM2-with-SM3',
  '1.3.101.113': 'Ed448',
};

function malformed(message: string, cause?: unknown): YinxinError {
  return new YinxinError('malformed-der', message, undefined, cause === undefined ? undefined : { cause });
}
function unsupported(message: string): YinxinError {
  return new YinxinError('unsupported-algorithm', message);
}

/**
 * Parses a PKCS#10 request given as DER or PEM ("CERTIFICATE REQUEST" or the legacy
 * "NEW CERTIFICATE REQUEST" label; text around the block is ignored, RFC 7468 s2) and verifies
 * its self-signature. Accepted keys: EC P-256/P-384, RSA 2048/3072/4096 (rsaEncryption or
 * id-RSASSA-PSS), Ed25519. Accepted signatures: ECDSA with SHA-256/384/512, RSA PKCS#1 v1.5 and
 * PSS with SHA-256/384/512 (MGF1 with the same hash), Ed25519.
 */
export async function parseCsr(input: Uint8Array): Promise<ParsedCsr> {
  try {
    return parseCsrUnchecked(input);
  } catch (e) {
    if (e instanceof YinxinError) throw e;
    // pkijs/asn1js/node:crypto throw plain Errors on hostile input: never let one escape as a 500.
    throw malformed(`the certification request could not be parsed: ${(e as Error)?.message ?? String(e)}`, e);
  }
}

function parseCsrUnchecked(input: Uint8Array): ParsedCsr {
  if (!(input instanceof Uint8Array)) throw new YinxinError('bad-request', 'a certification request must be given as bytes');
  if (input.length > CSR_MAX_BYTES) {
    throw new YinxinError('payload-too-large', `the certification request is ${input.length} bytes, more than the ${CSR_MAX_BYTES} allowed`);
  }
  const der = csrDerFromInput(input);

  const decoded = asn1js.fromBER(der);
  if (decoded.offset === -1 || decoded.result.error) {
    throw malformed(`the certification request is not valid DER: ${decoded.result.error || 'decoding failed'}`);
  }
  if (decoded.offset !== der.length) {
    throw malformed(`the certification request has ${der.length - decoded.offset} bytes of trailing data after its DER structure`);
  }
  // BER (indefinite or non-minimal lengths, constructed strings) re-encodes differently: RFC 2986 requires DER.
  const reencoded = new Uint8Array(decoded.result.toBER(false));
  if (!Buffer.from(reencoded).equals(Buffer.from(der))) throw malformed('the certification request is BER, not DER');

  let csr: pkijs.CertificationRequest;
  try {
    csr = new pkijs.CertificationRequest({ schema: decoded.result });
  } catch (e) {
    throw malformed('the input is not a PKCS#10 CertificationRequest', e);
  }
  if (csr.version !== 0) throw malformed(`the certification request version is ${csr.version}, expected 0 (v1)`);

  const info = (decoded.result as asn1js.Sequence).valueBlock.value[0] as asn1js.Sequence;
  const subjectDer = new Uint8Array(info.valueBlock.value[1].valueBeforeDecodeView);
  const publicKeyInfo = new Uint8Array(info.valueBlock.value[2].valueBeforeDecodeView);

  const { keySpec, key, keyAlgorithm } = readPublicKey(csr.subjectPublicKeyInfo, publicKeyInfo);
  verifySelfSignature(csr, key, keyAlgorithm);

  const requestedExtensions = readExtensionRequest(csr);
  const { sanDns, sanEmail } = readSubjectAltName(requestedExtensions);

  return {
    der: new Uint8Array(der),
    subject: csr.subject,
    subjectDer,
    publicKeyInfo,
    keySpec,
    ...(requestedExtensions ? { requestedExtensions } : {}),
    sanDns,
    sanEmail,
  };
}

const PEM_BLOCK = /-----BEGIN (NEW )?CERTIFICATE REQUEST-----\r?\n([\s\S]*?)-----END \1CERTIFICATE REQUEST-----/;

function csrDerFromInput(input: Uint8Array): Uint8Array {
  if (input.length === 0) throw malformed('the certification request is empty');
  if (input[0] === 0x30) return input;
  const text = Buffer.from(input).toString('latin1');
  if (!text.includes('-----BEGIN')) throw malformed('the input is neither DER (a SEQUENCE) nor PEM');
  const m = PEM_BLOCK.exec(text);
  if (!m) throw malformed('the PEM input has no complete CERTIFICATE REQUEST block');
  const body = m[2].replace(/[ \t\r\n]+/g, '');
  // Buffer's base64 decoder skips junk silently: check the alphabet and padding ourselves (RFC 7468 s3).
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length % 4 !== 0) {
    throw malformed('the PEM block contains characters that are not base64, or bad padding');
  }
  const der = new Uint8Array(Buffer.from(body, 'base64'));
  if (der.length === 0) throw malformed('the PEM block is empty');
  return der;
}

type KeyAlgorithm = 'ec' | 'rsa' | 'rsa-pss' | 'ed25519';

function readPublicKey(spki: pkijs.PublicKeyInfo, spkiDer: Uint8Array): { keySpec: KeySpec; key: KeyObject; keyAlgorithm: KeyAlgorithm } {
  const oid = spki.algorithm.algorithmId;
  let keyAlgorithm: KeyAlgorithm;
  let curve: 'P-256' | 'P-384' | undefined;
  if (oid === OID.ecPublicKey) {
    const params = spki.algorithm.algorithmParams;
    if (!(params instanceof asn1js.ObjectIdentifier)) {
      throw unsupported('EC keys must name their curve (RFC 5480 s2.1.1): explicit or implicit curve parameters are not supported');
    }
    const curveOid = params.valueBlock.toString();
    if (curveOid === OID.secp256r1) curve = 'P-256';
    else if (curveOid === OID.secp384r1) curve = 'P-384';
    else {
      const name = knownCurves[curveOid];
      throw unsupported(`the EC curve ${curveOid}${name ? ` (${name})` : ''} is not supported: use P-256 or P-384`);
    }
    keyAlgorithm = 'ec';
  } else if (oid === OID.rsaEncryption) {
    keyAlgorithm = 'rsa';
  } else if (oid === OID.rsassaPss) {
    keyAlgorithm = 'rsa-pss';
  } else if (oid === OID.ed25519) {
    keyAlgorithm = 'ed25519';
  } else {
    const name = knownUnsupportedKeys[oid];
    throw unsupported(`the public key algorithm ${oid}${name ? ` (${name})` : ''} is not supported: use EC P-256/P-384, RSA 2048-4096 or Ed25519`);
  }

  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(spkiDer), format: 'der', type: 'spki' });
  } catch (e) {
    throw malformed('the subject public key is not a valid key of its algorithm (bad point or modulus)', e);
  }

  if (keyAlgorithm === 'ec') return { keySpec: { type: 'ec', curve: curve! }, key, keyAlgorithm };
  if (keyAlgorithm === 'ed25519') return { keySpec: { type: 'ed25519' }, key, keyAlgorithm };
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < 2048) throw unsupported(`the RSA key has ${bits} bits, fewer than the 2048 required`);
  if (bits !== 2048 && bits !== 3072 && bits !== 4096) {
    throw unsupported(`the RSA key has ${bits} bits: only 2048, 3072 and 4096 are issued for`);
  }
  return { keySpec: { type: 'rsa', bits }, key, keyAlgorithm };
}

function rsaHashOfPkcs1(oid: string): HashName | null {
  switch (oid) {
    case OID.sha256WithRSAEncryption: return 'SHA-256';
    case OID.sha384WithRSAEncryption: return 'SHA-384';
    case OID.sha512WithRSAEncryption: return 'SHA-512';
    default: return null;
  }
}
function ecdsaHash(oid: string): HashName | null {
  switch (oid) {
    case OID.ecdsaWithSHA256: return 'SHA-256';
    case OID.ecdsaWithSHA384: return 'SHA-384';
    case OID.ecdsaWithSHA512: return 'SHA-512';
    default: return null;
  }
}
const nodeHash = (h: HashName) => h.replace('-', '').toLowerCase();

/**
 * RFC 4055 s2.1: the SHA-2 AlgorithmIdentifiers carry absent or NULL parameters; anything else is
 * malformed (regression: the CSR fuzz test found an INTEGER of length 0 there accepted, where
 * openssl refuses the request).
 */
function assertHashParameters(alg: pkijs.AlgorithmIdentifier, what: string): void {
  const params = alg.algorithmParams as unknown;
  // pkijs leaves an empty asn1js.Any where the parameters are absent.
  const absent = params === undefined || params instanceof asn1js.Any;
  if (!absent && !(params instanceof asn1js.Null && params.valueBeforeDecodeView.byteLength === 2)) {
    throw malformed(`the ${what} parameters must be absent or NULL (RFC 4055 s2.1)`);
  }
}

/** RFC 4055 s3.1 parameters, restricted to what node:crypto verifies: MGF1 with the message hash. */
function readPssParams(params: unknown): { hash: HashName; saltLength: number } {
  if (!(params instanceof asn1js.Sequence)) throw malformed('RSASSA-PSS signature parameters are missing (RFC 4055 s3.1)');
  let p: pkijs.RSASSAPSSParams;
  try {
    p = new pkijs.RSASSAPSSParams({ schema: params });
  } catch (e) {
    throw malformed('the RSASSA-PSS signature parameters could not be parsed', e);
  }
  const hashOid = p.hashAlgorithm.algorithmId;
  const hash = hashNameFromOid(hashOid);
  if (hash !== 'SHA-256' && hash !== 'SHA-384' && hash !== 'SHA-512') {
    throw unsupported(`RSASSA-PSS with hash ${hash ?? hashOid} is not supported: use SHA-256, SHA-384 or SHA-512`);
  }
  assertHashParameters(p.hashAlgorithm, 'RSASSA-PSS hash');
  if (p.maskGenAlgorithm.algorithmId !== OID.mgf1) throw unsupported(`RSASSA-PSS mask generation ${p.maskGenAlgorithm.algorithmId} is not supported: use MGF1`);
  let mgfHash: pkijs.AlgorithmIdentifier;
  try {
    mgfHash = new pkijs.AlgorithmIdentifier({ schema: p.maskGenAlgorithm.algorithmParams });
  } catch (e) {
    throw malformed('the MGF1 parameters of the RSASSA-PSS signature could not be parsed', e);
  }
  assertHashParameters(mgfHash, 'RSASSA-PSS MGF1 hash');
  const mgfHashOid = mgfHash.algorithmId;
  if (mgfHashOid !== hashOid) {
    throw unsupported(`RSASSA-PSS with MGF1 hash ${hashNameFromOid(mgfHashOid) ?? mgfHashOid} different from the message hash ${hash} is not supported`);
  }
  if (p.trailerField !== 1) throw malformed(`RSASSA-PSS trailerField must be 1 (RFC 4055 s3.1), got ${p.trailerField}`);
  if (!Number.isSafeInteger(p.saltLength) || p.saltLength < 0 || p.saltLength > 512) {
    throw malformed(`RSASSA-PSS saltLength ${p.saltLength} is out of range`);
  }
  return { hash, saltLength: p.saltLength };
}

function verifySelfSignature(csr: pkijs.CertificationRequest, key: KeyObject, keyAlgorithm: KeyAlgorithm): void {
  const sigOid = csr.signatureAlgorithm.algorithmId;
  const params = csr.signatureAlgorithm.algorithmParams;
  const signature = csr.signatureValue;
  if (signature.valueBlock.unusedBits !== 0) throw malformed('the signature BIT STRING has unused bits');
  const sig = Buffer.from(signature.valueBlock.valueHexView);
  const tbs = Buffer.from(csr.tbsView);
  const mismatch = (what: string) => unsupported(`the request is signed with ${what} but its key is ${describeKeyAlgorithm(keyAlgorithm)}`);

  let ok: boolean;
  const ecHash = ecdsaHash(sigOid);
  const pkcs1Hash = rsaHashOfPkcs1(sigOid);
  if (ecHash) {
    if (keyAlgorithm !== 'ec') throw mismatch(`ECDSA`);
    if (params !== undefined) throw malformed('ECDSA signature algorithm parameters must be absent (RFC 5758 s3.2)');
    ok = safeVerify(nodeHash(ecHash), tbs, { key, dsaEncoding: 'der' }, sig);
  } else if (pkcs1Hash) {
    // id-RSASSA-PSS keys may only make PSS signatures (RFC 4055 s1.2).
    if (keyAlgorithm !== 'rsa') throw mismatch('RSA PKCS#1 v1.5');
    ok = safeVerify(nodeHash(pkcs1Hash), tbs, { key, padding: cryptoConstants.RSA_PKCS1_PADDING }, sig);
  } else if (sigOid === OID.rsassaPss) {
    if (keyAlgorithm !== 'rsa' && keyAlgorithm !== 'rsa-pss') throw mismatch('RSASSA-PSS');
    const { hash, saltLength } = readPssParams(params);
    ok = safeVerify(nodeHash(hash), tbs, { key, padding: cryptoConstants.RSA_PKCS1_PSS_PADDING, saltLength }, sig);
  } else if (sigOid === OID.ed25519) {
    if (keyAlgorithm !== 'ed25519') throw mismatch('Ed25519');
    if (params !== undefined) throw malformed('Ed25519 signature algorithm parameters must be absent (RFC 8410 s3)');
    ok = safeVerify(null, tbs, key, sig);
  } else {
    const name = knownUnsupportedSignatures[sigOid];
    throw unsupported(`the signature algorithm ${sigOid}${name ? ` (${name})` : ''} is not supported: use ECDSA, RSA PKCS#1 v1.5 or PSS with SHA-256/384/512, or Ed25519`);
  }
  if (!ok) throw new YinxinError('bad-signature', 'the certification request signature does not verify: the requester has not proved possession of the private key');
}

function safeVerify(algorithm: string | null, data: Buffer, key: Parameters<typeof nodeVerify>[2], signature: Buffer): boolean {
  try {
    return nodeVerify(algorithm, data, key, signature);
  } catch {
    // OpenSSL refuses some malformed signatures (wrong length, bad DER) by throwing: same verdict.
    return false;
  }
}

function describeKeyAlgorithm(a: KeyAlgorithm): string {
  return a === 'ec' ? 'an EC key' : a === 'rsa' ? 'an RSA key' : a === 'rsa-pss' ? 'an RSASSA-PSS key' : 'an Ed25519 key';
}

function readExtensionRequest(csr: pkijs.CertificationRequest): pkijs.Extensions | undefined {
  const attributes = (csr.attributes ?? []).filter((a) => a.type === OID_EXTENSION_REQUEST);
  if (attributes.length === 0) return undefined;
  if (attributes.length > 1 || attributes[0].values.length !== 1) {
    throw malformed('the request must carry at most one extensionRequest attribute with one value (RFC 2985 s5.4.2)');
  }
  let extensions: pkijs.Extensions;
  try {
    extensions = new pkijs.Extensions({ schema: attributes[0].values[0] });
  } catch (e) {
    throw malformed('the extensionRequest attribute is not a list of Extensions', e);
  }
  const seen = new Set<string>();
  for (const ext of extensions.extensions) {
    if (seen.has(ext.extnID)) throw malformed(`the extension ${ext.extnID} is requested more than once (RFC 5280 s4.2)`);
    seen.add(ext.extnID);
  }
  return extensions;
}

function readSubjectAltName(extensions: pkijs.Extensions | undefined): { sanDns: string[]; sanEmail: string[] } {
  const sanDns: string[] = [];
  const sanEmail: string[] = [];
  const san = extensions?.extensions.find((e) => e.extnID === OID_SUBJECT_ALT_NAME);
  if (!san) return { sanDns, sanEmail };
  const decoded = asn1js.fromBER(san.extnValue.valueBlock.valueHexView);
  if (decoded.offset === -1 || decoded.offset !== san.extnValue.valueBlock.valueHexView.length) {
    throw malformed('the requested subjectAltName is not valid DER');
  }
  let names: pkijs.GeneralNames;
  try {
    names = new pkijs.GeneralNames({ schema: decoded.result });
  } catch (e) {
    throw malformed('the requested subjectAltName is not a GeneralNames', e);
  }
  for (const name of names.names) {
    if (name.type !== 1 && name.type !== 2) continue;
    const value = name.value;
    if (typeof value !== 'string') throw malformed('a subjectAltName dNSName or rfc822Name is not an IA5String');
    (name.type === 2 ? sanDns : sanEmail).push(value);
  }
  return { sanDns, sanEmail };
}
