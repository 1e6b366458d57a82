/**
 * Token-signing keys in the HSM, handed to oidc-provider as ExternalSigningKey objects: the
 * private key never leaves the token, oidc-provider gives us the JWS signing input and we return
 * the JOSE signature.
 *
 * ECDSA P-256 / ES256 (RFC 7518 s3.4): the JWS signature is the fixed-size R || S (64 bytes), not
 * the DER ECDSA-Sig-Value our Signer returns (the form X.509 and CMS carry), so it is converted.
 *
 * Rotation with overlap, live: keys are labelled idp/signing-<n>; the highest n signs, older ones
 * stay published in the JWKS until `retireAt` (creation of the successor + the longest lifetime of
 * a JWT we sign + clock tolerance), so relying parties holding a token or a cached JWKS keep
 * verifying; then they leave the JWKS and the HSM. The list lives in the store (idp.signing-keys).
 *
 * oidc-provider reads its keys once, at construction (`jwks`), into a keystore kept in its private
 * per-instance state. attach() re-runs oidc-provider's own initialisation of that keystore
 * (lib/helpers/initialize_keystore.js, the code the constructor runs, with the same checks) whenever
 * the stored list differs from the installed one, or a key's overlap has ended: rotate() here, a
 * rotation by another process on the same store, or time passing. The check runs before every
 * request the provider answers and costs one store read. The test in signing-keys.test.ts guards
 * this use of an internal module against oidc-provider upgrades.
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import * as asn1js from 'asn1js';
import { ExternalSigningKey } from 'oidc-provider';
import initializeKeyStore from 'oidc-provider/lib/helpers/initialize_keystore.js';
import type { Clock } from '../common/clock.ts';
import { YinxinError } from '../common/errors.ts';
import type { KeyStore, Signer } from '../hsm/signer.ts';
import type { Store, Table } from '../store/store.ts';
import type { AuditLog } from '../audit/types.ts';
import type { OidcProvider } from './provider.ts';

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

export interface SigningKeyView {
  kid: string;
  label: string;
  createdAt: string;
  /** The key new tokens are signed with. */
  current: boolean;
  /** When the key leaves the JWKS (set once a successor exists). */
  retireAt?: string;
}

export class SigningKeys {
  readonly #keys: KeyStore;
  readonly #store: Store;
  readonly #audit: AuditLog;
  readonly #clock: Clock;
  readonly #table: Table<SigningKeyRef[]>;
  /** Longest lifetime of a JWT we sign plus tolerance: how long a replaced key stays published. */
  readonly overlapSeconds: number;
  #provider: OidcProvider | undefined;
  /** The stored list the provider's keystore was last built from, and when its next key retires. */
  #installed: { refs: string; nextRetireAt: number; keys: Array<{ ref: SigningKeyRef; key: HsmSigningKey }> } | undefined;
  #syncing: Promise<void> | undefined;

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

  /** The keys as published (JWKS), current first. */
  async view(): Promise<SigningKeyView[]> {
    await this.sync();
    return (this.#installed?.keys ?? []).map(({ ref, key }, i) => ({
      kid: key.kid, label: ref.label, createdAt: ref.createdAt, current: i === 0, ...(ref.retireAt ? { retireAt: ref.retireAt } : {}),
    }));
  }

  /** The keys to publish, current (signing) first; creates the first key on first start and drops retired ones. */
  async load(): Promise<HsmSigningKey[]> {
    if (!this.list().length) await this.rotate();
    await this.#retire();
    const live = this.list();
    const ordered = [...live].sort((a, b) => b.n - a.n);
    const keys = await Promise.all(ordered.map(async (ref) => ({ ref, key: new HsmSigningKey(await this.#keys.getSigner(ref.label)) })));
    this.#installed = { refs: JSON.stringify(live), nextRetireAt: nextRetirement(live), keys };
    return keys.map((k) => k.key);
  }

  /**
   * Keeps `provider`'s signing keys and JWKS in step with the store from now on (see the file
   * comment). Call once, with the provider built from load()'s keys.
   */
  attach(provider: OidcProvider): void {
    this.#provider = provider;
    provider.use(async (_ctx: unknown, next: () => Promise<void>) => {
      await this.sync();
      await next();
    });
  }

  /** Reinstalls the provider's keys if the stored list changed or a key's overlap ended. */
  sync(): Promise<void> {
    if (!this.#provider) return Promise.resolve();
    const stale = !this.#installed || this.#installed.refs !== JSON.stringify(this.list()) || this.#clock.now().getTime() >= this.#installed.nextRetireAt;
    if (!stale) return Promise.resolve();
    this.#syncing ??= (async () => {
      try {
        const keys = await this.load();
        initializeKeyStore.call(this.#provider, { keys });
      } finally {
        this.#syncing = undefined;
      }
    })();
    return this.#syncing;
  }

  /**
   * Generates the next key in the HSM, which signs from now on (in every process on the store, at
   * its next request); the previous keys are retired after the overlap.
   */
  async rotate(actor = 'system', requestId?: string): Promise<SigningKeyRef> {
    const refs = this.list();
    const n = refs.reduce((m, r) => Math.max(m, r.n), 0) + 1;
    const label = `idp/signing-${n}`;
    if (!(await this.#keys.hasKey(label))) await this.#keys.generateKeyPair(label, { type: 'ec', curve: 'P-256' });
    const now = this.#clock.now();
    const ref: SigningKeyRef = { n, label, createdAt: now.toISOString() };
    const retireAt = new Date(now.getTime() + this.overlapSeconds * 1000).toISOString();
    await this.#store.transaction((tx) => {
      const current = tx.get(this.#table, 'keys') ?? [];
      if (current.some((r) => r.n >= n)) throw new YinxinError('conflict', 'another rotation of the IdP signing key happened at the same time; look at the keys and try again if needed');
      tx.put(this.#table, 'keys', [...current.map((r) => (r.retireAt ? r : { ...r, retireAt })), ref]);
      this.#audit.append(tx, { actor, action: 'idp.signing-key.rotate', object: `key:${label}`, outcome: 'success', requestId, details: { retireAt: current.length ? retireAt : undefined } });
    });
    await this.sync();
    return ref;
  }

  /** Drops keys whose overlap ended from the list (compare-and-swap, so two processes retire once) and from the HSM. */
  async #retire(): Promise<void> {
    const now = this.#clock.now();
    const due = (r: SigningKeyRef) => r.retireAt !== undefined && new Date(r.retireAt) <= now;
    if (!this.list().some(due)) return;
    const retired = await this.#store.transaction((tx) => {
      const refs = tx.get(this.#table, 'keys') ?? [];
      const gone = refs.filter(due);
      if (!gone.length) return [];
      tx.put(this.#table, 'keys', refs.filter((r) => !due(r)));
      for (const r of gone) this.#audit.append(tx, { actor: 'system', action: 'idp.signing-key.retire', object: `key:${r.label}`, outcome: 'success' });
      return gone;
    });
    for (const r of retired) await this.#keys.deleteKey(r.label).catch(() => undefined);
  }
}

function nextRetirement(refs: SigningKeyRef[]): number {
  return Math.min(Infinity, ...refs.flatMap((r) => (r.retireAt ? [new Date(r.retireAt).getTime()] : [])));
}
