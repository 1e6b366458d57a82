/**
 * Signature schemes <-> X.509 AlgorithmIdentifiers (RFC 5758, RFC 4055, RFC 8410), and the
 * conversion of PKCS#11's raw ECDSA r||s into the DER ECDSA-Sig-Value X.509 carries.
 */
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { YinxinError } from '../common/errors.ts';
import type { HashName, KeySpec, SignatureScheme } from './signer.ts';

export const OID = {
  ecdsaWithSHA256: '1.2.840.10045.4.3.2',
  ecdsaWithSHA384: '1.2.840.10045.4.3.3',
  ecdsaWithSHA512: '1.2.840.10045.4.3.4',
  sha256WithRSAEncryption: '1.2.840.113549.1.1.11',
  sha384WithRSAEncryption: '1.2.840.113549.1.1.12',
  sha512WithRSAEncryption: '1.2.840.113549.1.1.13',
  rsassaPss: '1.2.840.113549.1.1.10',
  mgf1: '1.2.840.113549.1.1.8',
  ed25519: '1.3.101.112',
  sha1: '1.3.14.3.2.26',
  sha256: '2.16.840.1.101.3.4.2.1',
  sha384: '2.16.840.1.101.3.4.2.2',
  sha512: '2.16.840.1.101.3.4.2.3',
  sha3_256: '2.16.840.1.101.3.4.2.8',
  sha3_384: '2.16.840.1.101.3.4.2.9',
  sha3_512: '2.16.840.1.101.3.4.2.10',
  ecPublicKey: '1.2.840.10045.2.1',
  rsaEncryption: '1.2.840.113549.1.1.1',
  secp256r1: '1.2.840.10045.3.1.7',
  secp384r1: '1.3.132.0.34',
} as const;

export function hashOfScheme(scheme: SignatureScheme): HashName | null {
  if (scheme === 'ed25519') return null;
  const bits = scheme.slice(-3);
  return `SHA-${bits}` as HashName;
}

export function defaultScheme(spec: KeySpec): SignatureScheme {
  switch (spec.type) {
    case 'ec': return spec.curve === 'P-384' ? 'ecdsa-sha384' : 'ecdsa-sha256';
    case 'rsa': return 'rsa-pkcs1-sha256';
    case 'ed25519': return 'ed25519';
  }
}

export function schemeFitsKey(scheme: SignatureScheme, spec: KeySpec): boolean {
  if (spec.type === 'ec') return scheme.startsWith('ecdsa-');
  if (spec.type === 'rsa') return scheme.startsWith('rsa-');
  return scheme === 'ed25519';
}

export function assertSchemeFitsKey(scheme: SignatureScheme, spec: KeySpec): void {
  if (!schemeFitsKey(scheme, spec)) {
    throw new YinxinError('unsupported-algorithm', `signature scheme ${scheme} does not fit a ${describeKeySpec(spec)} key`);
  }
}

export function describeKeySpec(spec: KeySpec): string {
  return spec.type === 'ec' ? `ECDSA ${spec.curve}` : spec.type === 'rsa' ? `RSA-${spec.bits}` : 'Ed25519';
}

const hashOid: Record<HashName, string> = { 'SHA-256': OID.sha256, 'SHA-384': OID.sha384, 'SHA-512': OID.sha512 };

function pssParams(hash: HashName): asn1js.Sequence {
  const saltLength = { 'SHA-256': 32, 'SHA-384': 48, 'SHA-512': 64 }[hash];
  const hashAlg = new pkijs.AlgorithmIdentifier({ algorithmId: hashOid[hash], algorithmParams: new asn1js.Null() });
  const params = new pkijs.RSASSAPSSParams({
    hashAlgorithm: hashAlg,
    maskGenAlgorithm: new pkijs.AlgorithmIdentifier({ algorithmId: OID.mgf1, algorithmParams: hashAlg.toSchema() }),
    saltLength,
  });
  return params.toSchema() as asn1js.Sequence;
}

/** The AlgorithmIdentifier naming `scheme` in a signatureAlgorithm field. */
export function signatureAlgorithm(scheme: SignatureScheme): pkijs.AlgorithmIdentifier {
  switch (scheme) {
    case 'ecdsa-sha256': return new pkijs.AlgorithmIdentifier({ algorithmId: OID.ecdsaWithSHA256 });
    case 'ecdsa-sha384': return new pkijs.AlgorithmIdentifier({ algorithmId: OID.ecdsaWithSHA384 });
    case 'ecdsa-sha512': return new pkijs.AlgorithmIdentifier({ algorithmId: OID.ecdsaWithSHA512 });
    // RFC 4055 s5: the parameters of the PKCS#1 v1.5 identifiers MUST be NULL.
    case 'rsa-pkcs1-sha256': return new pkijs.AlgorithmIdentifier({ algorithmId: OID.sha256WithRSAEncryption, algorithmParams: new asn1js.Null() });
    case 'rsa-pkcs1-sha384': return new pkijs.AlgorithmIdentifier({ algorithmId: OID.sha384WithRSAEncryption, algorithmParams: new asn1js.Null() });
    case 'rsa-pkcs1-sha512': return new pkijs.AlgorithmIdentifier({ algorithmId: OID.sha512WithRSAEncryption, algorithmParams: new asn1js.Null() });
    case 'rsa-pss-sha256': return new pkijs.AlgorithmIdentifier({ algorithmId: OID.rsassaPss, algorithmParams: pssParams('SHA-256') });
    case 'rsa-pss-sha384': return new pkijs.AlgorithmIdentifier({ algorithmId: OID.rsassaPss, algorithmParams: pssParams('SHA-384') });
    case 'rsa-pss-sha512': return new pkijs.AlgorithmIdentifier({ algorithmId: OID.rsassaPss, algorithmParams: pssParams('SHA-512') });
    // RFC 8410 s3: parameters absent.
    case 'ed25519': return new pkijs.AlgorithmIdentifier({ algorithmId: OID.ed25519 });
  }
}

/** DER of signatureAlgorithm(scheme), for templates encoded once. */
export function signatureAlgorithmDer(scheme: SignatureScheme): Uint8Array {
  return new Uint8Array(signatureAlgorithm(scheme).toSchema().toBER(false));
}

/** The digest AlgorithmIdentifier (parameters absent, RFC 5754 s2). */
export function digestAlgorithm(hash: HashName): pkijs.AlgorithmIdentifier {
  return new pkijs.AlgorithmIdentifier({ algorithmId: hashOid[hash] });
}

export function hashNameFromOid(oid: string): HashName | 'SHA-1' | 'SHA3-256' | 'SHA3-384' | 'SHA3-512' | null {
  switch (oid) {
    case OID.sha1: return 'SHA-1';
    case OID.sha256: return 'SHA-256';
    case OID.sha384: return 'SHA-384';
    case OID.sha512: return 'SHA-512';
    case OID.sha3_256: return 'SHA3-256';
    case OID.sha3_384: return 'SHA3-384';
    case OID.sha3_512: return 'SHA3-512';
    default: return null;
  }
}

/**
 * PKCS#11 CKM_ECDSA output (r || s, each the curve size) -> DER ECDSA-Sig-Value (RFC 3279 s2.2.3).
 * Hot path (every ECDSA signature): asn1js encodes the SEQUENCE once per pair of integer lengths
 * (a handful per curve); later signatures copy that encoding and put their r and s in place.
 */
export function ecdsaRawToDer(raw: Uint8Array): Uint8Array {
  const half = raw.length / 2;
  const r = integerContent(raw.subarray(0, half));
  const s = integerContent(raw.subarray(half));
  const key = r.length * 1024 + s.length;
  let template = ecdsaTemplates.get(key);
  if (!template) {
    const der = new Uint8Array(new asn1js.Sequence({ value: [new asn1js.Integer({ valueHex: r }), new asn1js.Integer({ valueHex: s })] }).toBER(false));
    template = { der, rAt: der.length - s.length - 2 - r.length, sAt: der.length - s.length };
    ecdsaTemplates.set(key, template);
  }
  const out = new Uint8Array(template.der);
  out.set(r, template.rAt);
  out.set(s, template.sAt);
  return out;
}

const ecdsaTemplates = new Map<number, { der: Uint8Array; rAt: number; sAt: number }>();

/** The content octets of a positive INTEGER: no redundant leading zeros, a zero prefixed before a leading 1 bit. */
function integerContent(b: Uint8Array): Uint8Array {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0 && !(b[i + 1] & 0x80)) i++;
  const trimmed = b.subarray(i);
  if (!(trimmed[0] & 0x80)) return trimmed;
  const out = new Uint8Array(trimmed.length + 1);
  out.set(trimmed, 1);
  return out;
}
