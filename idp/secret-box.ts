/**
 * Secrets the IdP has to read back in clear are kept sealed at rest: OIDC client secrets
 * (oidc-provider compares them for client_secret_basic / client_secret_post) and users' TOTP seeds
 * (RFC 6238 needs the seed to compute the code). Hashing would not do for either.
 *
 * Sealing is AES-256-GCM under the HSM secret key `idp/secrets` (KeyStore.encrypt/decrypt: the AES
 * key is generated in the token, sensitive and not extractable, so a copy of the store or of a
 * backup without the token reveals nothing). The associated data names the purpose and the record,
 * `yinxin:idp:<purpose>:<record id>`: a sealed value copied into another record (another
 * application's secret, another user's seed) fails its integrity check instead of opening.
 */
import { YinxinError } from '../common/errors.ts';
import type { KeyStore } from '../hsm/signer.ts';

export const IDP_SECRETS_KEY_LABEL = 'idp/secrets';

export type SecretPurpose = 'client-secret' | 'totp';

/** A secret as stored: iv(12) || ciphertext || tag(16), never the plaintext. */
export interface SealedSecret {
  sealed: Uint8Array;
}

export function isSealedSecret(v: unknown): v is SealedSecret {
  return typeof v === 'object' && v !== null && (v as SealedSecret).sealed instanceof Uint8Array;
}

export class SecretBox {
  readonly #keys: KeyStore;
  readonly #label: string;
  #ready: Promise<void> | undefined;

  constructor(keys: KeyStore, label = IDP_SECRETS_KEY_LABEL) {
    this.#keys = keys;
    this.#label = label;
  }

  async seal(purpose: SecretPurpose, recordId: string, plaintext: string): Promise<SealedSecret> {
    await this.#ensureKey();
    return { sealed: await this.#keys.encrypt(this.#label, Buffer.from(plaintext, 'utf8'), aad(purpose, recordId)) };
  }

  async open(purpose: SecretPurpose, recordId: string, secret: SealedSecret): Promise<string> {
    await this.#ensureKey();
    try {
      return Buffer.from(await this.#keys.decrypt(this.#label, secret.sealed, aad(purpose, recordId))).toString('utf8');
    } catch (e) {
      if (e instanceof YinxinError && e.code === 'bad-signature') {
        throw new YinxinError('sealed-secret-invalid', `the sealed ${purpose} of '${recordId}' failed its integrity check: the record was altered or copied from another one`, undefined, { cause: e });
      }
      throw e;
    }
  }

  #ensureKey(): Promise<void> {
    this.#ready ??= this.#keys.ensureSecretKey(this.#label).catch((e: unknown) => {
      this.#ready = undefined;
      throw e;
    });
    return this.#ready;
  }
}

function aad(purpose: SecretPurpose, recordId: string): Uint8Array {
  return Buffer.from(`yinxin:idp:${purpose}:${recordId}`, 'utf8');
}
