/**
 * A KeyStore whose keys live in this process's memory (node:crypto). For tests and fakes only:
 * the appliance itself always uses the PKCS#11 store, so that private keys never leave the HSM.
 */
import { createCipheriv, createDecipheriv, createHash, generateKeyPairSync, randomBytes, sign as nodeSign, type KeyObject } from 'node:crypto';
import { YinxinError } from '../common/errors.ts';
import { assertSchemeFitsKey, defaultScheme, hashOfScheme } from './algorithms.ts';
import type { KeyInfo, KeySpec, KeyStore, SignatureScheme, Signer } from './signer.ts';

class SoftwareSigner implements Signer {
  readonly label: string;
  readonly spec: KeySpec;
  readonly publicKeyInfo: Uint8Array;
  readonly scheme: SignatureScheme;
  readonly #privateKey: KeyObject;
  readonly #counters: { signs: number };

  constructor(label: string, spec: KeySpec, privateKey: KeyObject, publicKey: KeyObject, counters: { signs: number }) {
    this.label = label;
    this.spec = spec;
    this.#privateKey = privateKey;
    this.publicKeyInfo = new Uint8Array(publicKey.export({ type: 'spki', format: 'der' }));
    this.scheme = defaultScheme(spec);
    this.#counters = counters;
  }

  async sign(data: Uint8Array, scheme: SignatureScheme = this.scheme): Promise<Uint8Array> {
    return this.signSync(data, scheme);
  }

  signSync(data: Uint8Array, scheme: SignatureScheme = this.scheme): Uint8Array {
    assertSchemeFitsKey(scheme, this.spec);
    const hash = hashOfScheme(scheme);
    const algorithm = hash === null ? null : hash.replace('-', '').toLowerCase();
    const pss = scheme.startsWith('rsa-pss-');
    this.#counters.signs++;
    return new Uint8Array(nodeSign(algorithm, data, {
      key: this.#privateKey,
      dsaEncoding: 'der',
      ...(pss ? { padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: Number(scheme.slice(-3)) / 8 } : {}),
    }));
  }
}

export class SoftwareKeyStore implements KeyStore {
  readonly #keys = new Map<string, SoftwareSigner>();
  readonly #secrets = new Map<string, Buffer>();
  readonly #counters = { signs: 0 };

  async generateKeyPair(label: string, spec: KeySpec): Promise<Signer> {
    if (this.#keys.has(label)) throw new YinxinError('conflict', `a key labelled "${label}" already exists`);
    const { privateKey, publicKey } =
      spec.type === 'ec' ? generateKeyPairSync('ec', { namedCurve: spec.curve })
      : spec.type === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: spec.bits })
      : generateKeyPairSync('ed25519');
    const signer = new SoftwareSigner(label, spec, privateKey, publicKey, this.#counters);
    this.#keys.set(label, signer);
    return signer;
  }

  async getSigner(label: string): Promise<Signer> {
    const s = this.#keys.get(label);
    if (!s) throw new YinxinError('key-not-found', `no key labelled "${label}" in the software key store`);
    return s;
  }

  async hasKey(label: string): Promise<boolean> {
    return this.#keys.has(label);
  }

  async listKeys(): Promise<KeyInfo[]> {
    return [...this.#keys.values()].map((s) => ({
      label: s.label,
      spec: s.spec,
      id: createHash('sha1').update(s.publicKeyInfo).digest('hex'),
    }));
  }

  async deleteKey(label: string): Promise<void> {
    this.#keys.delete(label);
  }

  async ensureSecretKey(label: string): Promise<void> {
    if (!this.#secrets.has(label)) this.#secrets.set(label, randomBytes(32));
  }

  #secret(label: string): Buffer {
    const k = this.#secrets.get(label);
    if (!k) throw new YinxinError('key-not-found', `no secret key labelled "${label}"`);
    return k;
  }

  async encrypt(label: string, plaintext: Uint8Array, aad?: Uint8Array): Promise<Uint8Array> {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.#secret(label), iv);
    if (aad) c.setAAD(aad);
    const ct = Buffer.concat([c.update(plaintext), c.final()]);
    return new Uint8Array(Buffer.concat([iv, ct, c.getAuthTag()]));
  }

  async decrypt(label: string, sealed: Uint8Array, aad?: Uint8Array): Promise<Uint8Array> {
    const iv = sealed.subarray(0, 12);
    const tag = sealed.subarray(sealed.length - 16);
    const d = createDecipheriv('aes-256-gcm', this.#secret(label), iv);
    if (aad) d.setAAD(aad);
    d.setAuthTag(tag);
    try {
      return new Uint8Array(Buffer.concat([d.update(sealed.subarray(12, sealed.length - 16)), d.final()]));
    } catch (e) {
      throw new YinxinError('bad-signature', 'the sealed data failed its integrity check', undefined, { cause: e });
    }
  }

  async health() {
    return { ok: true, detail: 'software key store (tests only)' };
  }

  stats() {
    return { signs: this.#counters.signs, signErrors: 0 };
  }

  async close(): Promise<void> {}
}
