/**
 * The signer and key-store contract every service signs through. The PKCS#11 implementation
 * (hsm/pkcs11.ts) keeps every private key inside the HSM; the software implementation
 * (hsm/software.ts) exists so cores can be tested without one. Documented like
 * oidc-provider's adapter: implement all of it, throw YinxinError with the codes named.
 */

export type KeySpec =
  | { type: 'ec'; curve: 'P-256' | 'P-384' }
  | { type: 'rsa'; bits: 2048 | 3072 | 4096 }
  | { type: 'ed25519' };

export type HashName = 'SHA-256' | 'SHA-384' | 'SHA-512';

export type SignatureScheme =
  | 'ecdsa-sha256' | 'ecdsa-sha384' | 'ecdsa-sha512'
  | 'rsa-pkcs1-sha256' | 'rsa-pkcs1-sha384' | 'rsa-pkcs1-sha512'
  | 'rsa-pss-sha256' | 'rsa-pss-sha384' | 'rsa-pss-sha512'
  | 'ed25519';

export interface Signer {
  /** CKA_LABEL of the key pair; unique in the token. */
  readonly label: string;
  readonly spec: KeySpec;
  /** DER SubjectPublicKeyInfo of the public half. */
  readonly publicKeyInfo: Uint8Array;
  /** The scheme used when sign() is called without one (ecdsa-sha256/384 by curve, rsa-pkcs1-sha256, ed25519). */
  readonly scheme: SignatureScheme;
  /**
   * Signs `data` (the whole message: hashing is part of the scheme). Returns the signature in the
   * form X.509, CMS and OCSP carry: DER ECDSA-Sig-Value for ECDSA, raw bytes for RSA and Ed25519.
   * Safe to call concurrently. Throws YinxinError 'unsupported-algorithm' for a scheme the key
   * cannot do, 'hsm-unavailable' when the token is gone.
   */
  sign(data: Uint8Array, scheme?: SignatureScheme): Promise<Uint8Array>;
}

export interface KeyInfo {
  label: string;
  spec: KeySpec;
  /** Hex CKA_ID (the SHA-1 of the public key for keys we generate). */
  id: string;
}

export interface KeyStore {
  /**
   * Generates a key pair inside the token: private half CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE,
   * not CKA_EXTRACTABLE. Throws 'conflict' if the label exists, 'unsupported-algorithm' if the
   * module cannot generate the spec (Ed25519 on some modules).
   */
  generateKeyPair(label: string, spec: KeySpec): Promise<Signer>;
  /** The signer for an existing key pair; throws 'key-not-found' naming the label. */
  getSigner(label: string): Promise<Signer>;
  hasKey(label: string): Promise<boolean>;
  listKeys(): Promise<KeyInfo[]>;
  /** Removes a key pair (used by tests and key rotation clean-up). */
  deleteKey(label: string): Promise<void>;

  /** Creates (if absent) an AES-256 secret key in the token for data at rest (key archive). */
  ensureSecretKey(label: string): Promise<void>;
  /** AES-256-GCM under the named secret key: output is iv(12) || ciphertext || tag(16). */
  encrypt(label: string, plaintext: Uint8Array, aad?: Uint8Array): Promise<Uint8Array>;
  decrypt(label: string, sealed: Uint8Array, aad?: Uint8Array): Promise<Uint8Array>;

  /** Cheap liveness check for /healthz: a session can be opened and the token is logged in. */
  health(): Promise<{ ok: boolean; detail: string }>;
  /** Counters for /metrics. */
  stats(): { signs: number; signErrors: number };
  close(): Promise<void>;
}
