/**
 * Subject public keys: what kind of key a SubjectPublicKeyInfo carries, whether a profile allows
 * it, and its key identifier (RFC 5280 s4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits).
 */
import { createHash, createPublicKey } from 'node:crypto';
import * as asn1js from 'asn1js';
import { YinxinError } from '../common/errors.ts';
import { OID } from '../hsm/algorithms.ts';
import type { Profile } from './profiles.ts';

export type PublicKeyKind =
  | { type: 'ec'; curve: 'P-256' | 'P-384' }
  | { type: 'rsa'; bits: number }
  | { type: 'ed25519' };

export interface SubjectPublicKey {
  kind: PublicKeyKind;
  /** DER SubjectPublicKeyInfo, exactly as received. */
  der: Uint8Array;
  /** SHA-1 of the subjectPublicKey BIT STRING contents. */
  keyIdentifier: Uint8Array;
}

const curveByOid: Record<string, 'P-256' | 'P-384'> = { [OID.secp256r1]: 'P-256', [OID.secp384r1]: 'P-384' };

function malformed(message: string, cause?: unknown): YinxinError {
  return new YinxinError('malformed-der', message, undefined, cause === undefined ? undefined : { cause });
}

/** Parses and classifies an SPKI. Throws 'malformed-der' or 'unsupported-algorithm' (naming the algorithm or curve). */
export function readSubjectPublicKey(der: Uint8Array): SubjectPublicKey {
  const parsed = asn1js.fromBER(der);
  if (parsed.offset === -1 || parsed.offset !== der.byteLength || !(parsed.result instanceof asn1js.Sequence)) {
    throw malformed('the SubjectPublicKeyInfo is not a DER SEQUENCE');
  }
  const [algorithm, bits] = parsed.result.valueBlock.value;
  if (!(algorithm instanceof asn1js.Sequence) || !(bits instanceof asn1js.BitString)) throw malformed('the SubjectPublicKeyInfo does not have the SEQUENCE { algorithm, BIT STRING } shape');
  const [algOid, params] = algorithm.valueBlock.value;
  if (!(algOid instanceof asn1js.ObjectIdentifier)) throw malformed('the key algorithm is not an OBJECT IDENTIFIER');
  const oid = algOid.valueBlock.toString();
  let kind: PublicKeyKind;
  if (oid === OID.ecPublicKey) {
    const curveOid = params instanceof asn1js.ObjectIdentifier ? params.valueBlock.toString() : '(explicit or missing parameters)';
    const curve = curveByOid[curveOid];
    if (!curve) throw new YinxinError('unsupported-algorithm', `the elliptic curve ${curveOid} is not supported (P-256 and P-384 are)`, { curve: curveOid });
    kind = { type: 'ec', curve };
  } else if (oid === OID.rsaEncryption) {
    kind = { type: 'rsa', bits: 0 };
  } else if (oid === OID.ed25519) {
    kind = { type: 'ed25519' };
  } else {
    throw new YinxinError('unsupported-algorithm', `the key algorithm ${oid} is not supported (EC, RSA and Ed25519 are)`, { algorithm: oid });
  }
  // Let OpenSSL check the key itself: the EC point is on the curve, the RSA modulus parses.
  let details;
  try {
    details = createPublicKey({ key: Buffer.from(der.buffer, der.byteOffset, der.byteLength), format: 'der', type: 'spki' }).asymmetricKeyDetails;
  } catch (e) {
    throw malformed('the public key is not valid for its algorithm', e);
  }
  if (kind.type === 'rsa') kind = { type: 'rsa', bits: details?.modulusLength ?? 0 };
  const keyIdentifier = new Uint8Array(createHash('sha1').update(bits.valueBlock.valueHexView).digest());
  return { kind, der, keyIdentifier };
}

export function describeKey(kind: PublicKeyKind): string {
  return kind.type === 'ec' ? `ECDSA ${kind.curve}` : kind.type === 'rsa' ? `RSA-${kind.bits}` : 'Ed25519';
}

/** Throws 'unsupported-algorithm' when the profile does not allow this key. */
export function checkKeyAllowed(profile: Profile, kind: PublicKeyKind): void {
  const ok = profile.keys.some((rule) =>
    rule.type === 'ec' ? kind.type === 'ec' && rule.curves.includes(kind.curve)
    : rule.type === 'rsa' ? kind.type === 'rsa' && kind.bits >= rule.minBits && kind.bits <= rule.maxBits
    : kind.type === 'ed25519');
  if (!ok) {
    const allowed = profile.keys.map((r) => r.type === 'ec' ? `ECDSA ${r.curves.join('/')}` : r.type === 'rsa' ? `RSA ${r.minBits}-${r.maxBits}` : 'Ed25519').join(', ');
    throw new YinxinError('unsupported-algorithm', `profile ${profile.name} does not accept a ${describeKey(kind)} key (allowed: ${allowed})`, { key: describeKey(kind), profile: profile.name });
  }
}
