/**
 * Token-signing keys in the HSM, handed to oidc-provider as ExternalSigningKey objects: the
 * private key never leaves the token, oidc-provider gives us the JWS signing input and we return
 * the JOSE signature.
 *
 * ECDSA P-256 / ES256 (RFC 7518 s3.4): the JWS signature is the fixed-size R || S (64 bytes), not
 * the DER ECDSA-Sig-Value our Signer returns (the form X.509 and CMS carry), so it is converted.
 *
 * Rotation with overlap: keys are labelled idp/signing-<n>; the highest n signs, older ones stay
 * published in the JWKS until `retireAt` (creation of the successor + the longest lifetime of a
 * JWT we sign + clock tolerance), so relying parties that cached a token or the JWKS keep
 * verifying. rotate() records the new key; it signs from the next provider build (restart).
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import * as asn1js from 'asn1js';
import { ExternalSigningKey } from 'oidc-provider';
import type { Clock } from '../common/clock.ts';
import { YinxinError } from '../common/errors.ts';
import type { KeyStore, Signer } from '../hsm/signer.ts';
import type { Store, Table } from '../store/store.ts';
import type { AuditLog } from '../audit/types.ts';

export interface SigningKeyRef {
  n: number;
  label: string;
  createdAt: string;
  /** Set when a successor exists: the key is dropped from the JWKS (and the HSM) after this. */
  retireAt?: string;
}

/** DER ECDSA-Sig-Value -> JOSE R || S, each left-padded to `size` bytes. */
export function ecdsaDerToJose(der: Uint8Array, size = 32): Uint8Array {
  const parsed = asn1js.fromBER(der);
  const seq = parsed.result as asn1js.Sequence;
  if (parsed.offset === -1 || !(seq instanceof asn1js.Sequence) || seq.valueBlock.value.length !== 2) {
    throw new YinxinError('internal', 'the HSM returned an ECDSA signature that is not an ECDSA-Sig-Value');
  }
  const out = new Uint8Array(size * 2);
  seq.valueBlock.value.forEach((v, i) => {
    let bytes = new Uint8Array((v as asn1js.Integer).valueBlock.valueHexView);
    while (bytes.length > size && bytes[0] === 0) bytes = bytes.subarray(1);
    if (bytes.length > size) throw new YinxinError('internal', 'ECDSA signature component longer than the curve');
    out.set(bytes, i * size + size - bytes.length);
  });
  return out;
}

/** An oidc-provider ExternalSigningKey backed by a Signer (ES256 with a P-256 HSM key). */
export class HsmSigningKey extends ExternalSigningKey {
  readonly #signer: Signer;
  readonly #publicKey: KeyObject;

  constructor(signer: Signer) {
    super();
    if (signer.spec.type !== 'ec' || signer.spec.curve !== 'P-256') throw new YinxinError('unsupported-algorithm', 'IdP signing keys are ECDSA P-256 (ES256)');
    this.#signer = signer;
    this.#publicKey = createPublicKey({ key: Buffer.from(signer.publicKeyInfo), format: 'der', type: 'spki' });
    this.alg = 'ES256';
    // RFC 7638 thumbprint: stable across restarts, distinct per key.
    const jwk = this.#publicKey.export({ format: 'jwk' });
    this.kid = createHash('sha256').update(JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y })).digest('base64url');
  }

  keyObject(): KeyObject {
    return this.#publicKey;
  }

  async sign(data: Uint8Array): Promise<Uint8Array> {
    return ecdsaDerToJose(await this.#signer.sign(data, 'ecdsa-sha256'));
  }
}

export class SigningKeys {
  readonly #keys: KeyStore;
  readonly #store: Store;
  readonly #audit: AuditLog;
  readonly #clock: Clock;
  readonly #table: Table<SigningKeyRef[]>;
  /** Longest lifetime of a JWT we sign plus tolerance: how long a replaced key stays published. */
  readonly overlapSeconds: number;

  constructor(o: { keys: KeyStore; store: Store; audit: AuditLog; clock: Clock; overlapSeconds: number }) {
    this.#keys = o.keys;
    this.#store = o.store;
    this.#audit = o.audit;
    this.#clock = o.clock;
    this.#table = o.store.table('idp.signing-keys');
    this.overlapSeconds = o.overlapSeconds;
  }

  list(): SigningKeyRef[] {
    return this.#table.get('keys') ?? [];
  }

  /** The keys to publish, current (signing) first; creates the first key on first start and drops retired ones. */
  async load(): Promise<HsmSigningKey[]> {
    let refs = this.list();
    if (!refs.length) refs = [await this.rotate()];
    const now = this.#clock.now();
    const live = refs.filter((r) => !r.retireAt || new Date(r.retireAt) > now);
    const retired = refs.filter((r) => !live.includes(r));
    if (retired.length) {
      await this.#store.transaction((tx) => {
        tx.put(this.#table, 'keys', live);
        for (const r of retired) this.#audit.append(tx, { actor: 'system', action: 'idp.signing-key.retire', object: `key:${r.label}`, outcome: 'success' });
      });
      for (const r of retired) await this.#keys.deleteKey(r.label).catch(() => undefined);
    }
    const ordered = [...live].sort((a, b) => b.n - a.n);
    return Promise.all(ordered.map(async (r) => new HsmSigningKey(await this.#keys.getSigner(r.label))));
  }

  /** Generates the next key in the HSM; the previous current key is retired after the overlap. */
  async rotate(actor = 'system'): Promise<SigningKeyRef> {
    const refs = this.list();
    const n = refs.reduce((m, r) => Math.max(m, r.n), 0) + 1;
    const label = `idp/signing-${n}`;
    if (!(await this.#keys.hasKey(label))) await this.#keys.generateKeyPair(label, { type: 'ec', curve: 'P-256' });
    const now = this.#clock.now();
    const ref: SigningKeyRef = { n, label, createdAt: now.toISOString() };
    const retireAt = new Date(now.getTime() + this.overlapSeconds * 1000).toISOString();
    await this.#store.transaction((tx) => {
      const current = tx.get(this.#table, 'keys') ?? [];
      tx.put(this.#table, 'keys', [...current.map((r) => (r.retireAt ? r : { ...r, retireAt })), ref]);
      this.#audit.append(tx, { actor, action: 'idp.signing-key.rotate', object: `key:${label}`, outcome: 'success', details: { retireAt: current.length ? retireAt : undefined } });
    });
    return ref;
  }
}
