/**
 * PKCS#12 (RFC 7292) export of an end-entity key generated on the user's behalf, the one case
 * where a private key leaves the appliance (design.md). Built with node-forge, which pkijs has no
 * convenient answer for, but assembled here rather than with forge.pkcs12.toPkcs12Asn1, which
 * only takes RSA keys and only MACs with SHA-1. What a PFX made here uses:
 *   - key: pkcs8ShroudedKeyBag, PBES2 (RFC 8018) = PBKDF2-HMAC-SHA256 + AES-256-CBC
 *   - certificates: certBags in a plain `data` SafeContents (public, as forge does)
 *   - integrity: MacData with HMAC-SHA256, key from the RFC 7292 Appendix B KDF over SHA-256
 * OpenSSL 3.0 reads it without -legacy (its own defaults: PBES2/AES-256-CBC, SHA-256 MAC, 2048
 * iterations); we iterate PKCS12_ITERATIONS times.
 */
import { X509Certificate, createHash, createPrivateKey, createPublicKey, randomBytes, randomInt } from 'node:crypto';
import forge from 'node-forge';
import { YinxinError } from '../common/errors.ts';

/** PBKDF2 and MAC iteration count. node-forge's PBKDF2-SHA256 and PKCS#12 KDF are pure JS: ~0.1 s per 10,000 each. */
export const PKCS12_ITERATIONS = 50_000;

export interface Pkcs12Input {
  /** DER PrivateKeyInfo (RFC 5208) of any algorithm node:crypto knows (EC, RSA, Ed25519). */
  privateKeyPkcs8: Uint8Array;
  /** DER certificate of that key. */
  certificate: Uint8Array;
  /** DER CA certificates, issuing CA first. */
  chain: Uint8Array[];
  password: string;
  /** PKCS#9 friendlyName shown by key stores (Windows, Firefox). */
  friendlyName?: string;
}

const { asn1, pki } = forge;
const OID = {
  data: '1.2.840.113549.1.7.1',
  pkcs8ShroudedKeyBag: '1.2.840.113549.1.12.10.1.2',
  certBag: '1.2.840.113549.1.12.10.1.3',
  x509Certificate: '1.2.840.113549.1.9.22.1',
  friendlyName: '1.2.840.113549.1.9.20',
  localKeyId: '1.2.840.113549.1.9.21',
  sha256: '2.16.840.1.101.3.4.2.1',
} as const;

const binary = (u8: Uint8Array) => Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength).toString('latin1');
const seq = (value: forge.asn1.Asn1[]) => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, value);
const set = (value: forge.asn1.Asn1[]) => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SET, true, value);
const oid = (o: string) => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(o).getBytes());
const octets = (bytes: string) => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OCTETSTRING, false, bytes);
const explicit0 = (value: forge.asn1.Asn1[]) => asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, value);
const integer = (n: number) => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, asn1.integerToDer(n).getBytes());
/** ContentInfo of type data around DER `content` (RFC 7292 s4.1, PKCS#7 data). */
const dataContentInfo = (content: forge.asn1.Asn1) => seq([oid(OID.data), explicit0([octets(asn1.toDer(content).getBytes())])]);

/**
 * A password-protected PFX holding the key, its certificate and the chain. Throws
 * 'validation-failed' if the key does not belong to the certificate or an input is not DER.
 */
export function buildPkcs12(input: Pkcs12Input): Uint8Array {
  const { privateKeyPkcs8, certificate, chain, password, friendlyName } = input;
  if (typeof password !== 'string' || password.length === 0) throw new YinxinError('validation-failed', 'a PKCS#12 password is required', { field: 'password' });
  checkKeyMatchesCertificate(privateKeyPkcs8, certificate);
  chain.forEach((der, i) => {
    try {
      new X509Certificate(der);
    } catch (e) {
      throw new YinxinError('validation-failed', `chain certificate ${i} is not a DER certificate`, { field: 'chain', position: i }, { cause: e });
    }
  });

  // RFC 7292 s4.2: localKeyId links the key bag to its certificate bag; SHA-1 of the certificate is the usual value.
  const attributes = [seq([oid(OID.localKeyId), set([octets(createHash('sha1').update(certificate).digest().toString('latin1'))])])];
  if (friendlyName !== undefined) {
    attributes.push(seq([oid(OID.friendlyName), set([asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BMPSTRING, false, friendlyName)])]));
  }
  const bagAttributes = set(attributes);

  const certBag = (der: Uint8Array, withAttributes: boolean) => seq([
    oid(OID.certBag),
    explicit0([seq([oid(OID.x509Certificate), explicit0([octets(binary(der))])])]),
    ...(withAttributes ? [bagAttributes] : []),
  ]);
  const certSafeContents = seq([certBag(certificate, true), ...chain.map((der) => certBag(der, false))]);

  // PBES2 with PBKDF2-HMAC-SHA256 and AES-256-CBC; RFC 8018 s6.2 passwords are octet strings: UTF-8.
  const encryptedKey = pki.encryptPrivateKeyInfo(asn1.fromDer(binary(privateKeyPkcs8)), forge.util.encodeUtf8(password), {
    algorithm: 'aes256', count: PKCS12_ITERATIONS, saltSize: 16, prfAlgorithm: 'sha256',
  } as forge.pki.EncryptionOptions & { prfAlgorithm: string });
  const keySafeContents = seq([seq([oid(OID.pkcs8ShroudedKeyBag), explicit0([encryptedKey]), bagAttributes])]);

  const authenticatedSafe = seq([dataContentInfo(certSafeContents), dataContentInfo(keySafeContents)]);
  const authenticatedSafeDer = asn1.toDer(authenticatedSafe).getBytes();

  // RFC 7292 Appendix B.2 KDF (ID 3 = MAC key) over the BMPString password, as every reader expects for MacData.
  const macSalt = randomBytes(16).toString('latin1');
  const macKey = forge.pkcs12.generateKey(password, forge.util.createBuffer(macSalt), 3, PKCS12_ITERATIONS, 32, forge.md.sha256.create()).getBytes();
  const hmac = forge.hmac.create();
  hmac.start(forge.md.sha256.create(), macKey);
  hmac.update(authenticatedSafeDer);
  const macData = seq([
    seq([seq([oid(OID.sha256), asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, '')]), octets(hmac.digest().getBytes())]),
    octets(macSalt),
    integer(PKCS12_ITERATIONS),
  ]);

  const pfx = seq([integer(3), seq([oid(OID.data), explicit0([octets(authenticatedSafeDer)])]), macData]);
  return new Uint8Array(Buffer.from(asn1.toDer(pfx).getBytes(), 'latin1'));
}

function checkKeyMatchesCertificate(privateKeyPkcs8: Uint8Array, certificate: Uint8Array): void {
  let keySpki: Buffer;
  try {
    keySpki = createPublicKey(createPrivateKey({ key: Buffer.from(privateKeyPkcs8), format: 'der', type: 'pkcs8' })).export({ type: 'spki', format: 'der' });
  } catch (e) {
    throw new YinxinError('validation-failed', 'the private key is not a DER PKCS#8 PrivateKeyInfo', { field: 'privateKeyPkcs8' }, { cause: e });
  }
  let certSpki: Buffer;
  try {
    certSpki = new X509Certificate(certificate).publicKey.export({ type: 'spki', format: 'der' });
  } catch (e) {
    throw new YinxinError('validation-failed', 'the certificate is not a DER X.509 certificate', { field: 'certificate' }, { cause: e });
  }
  if (!keySpki.equals(certSpki)) {
    throw new YinxinError('validation-failed', 'the private key does not belong to the certificate', { field: 'privateKeyPkcs8' });
  }
}

/** No 0/O/o, 1/l/I/i: read aloud or copied by hand without confusion. 55 symbols, ~5.78 bits each. */
const OTP_ALPHABET = '23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghjkmnpqrstuvwxyz';

/** A one-time password from the CSPRNG (crypto.randomInt: uniform), 16 symbols (~92 bits) by default. */
export function generateOneTimePassword(length = 16): string {
  if (!Number.isSafeInteger(length) || length < 12 || length > 128) {
    throw new YinxinError('validation-failed', 'a one-time password has 12 to 128 characters', { field: 'length' });
  }
  let out = '';
  for (let i = 0; i < length; i++) out += OTP_ALPHABET[randomInt(OTP_ALPHABET.length)];
  return out;
}
