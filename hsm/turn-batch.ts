/**
 * Signatures asked for within one event-loop turn, handed to the signer together on the next
 * (setImmediate). Requests arrive one per socket callback, so the HSM key store would see each as
 * a lone caller and sign it synchronously on the main thread; handed together, it spreads them
 * over its worker threads (hsm/pkcs11.ts), leaving the main thread to HTTP and encoding. For
 * services that sign per request at high rates (TSA tokens, OCSP responses with a nonce).
 */
import type { SignatureScheme, Signer } from './signer.ts';

interface Job {
  data: Uint8Array;
  resolve: (signature: Uint8Array) => void;
  reject: (error: unknown) => void;
}

export class TurnBatchingSigner {
  readonly #signer: Signer;
  readonly #scheme: SignatureScheme;
  #queue: Job[] = [];

  constructor(signer: Signer, scheme: SignatureScheme = signer.scheme) {
    this.#signer = signer;
    this.#scheme = scheme;
  }

  sign(data: Uint8Array): Promise<Uint8Array> {
    return new Promise((resolve, reject) => {
      if (this.#queue.push({ data, resolve, reject }) === 1) setImmediate(() => this.#release());
    });
  }

  #release(): void {
    const batch = this.#queue;
    this.#queue = [];
    for (const job of batch) {
      let signing: Promise<Uint8Array>;
      try {
        signing = this.#signer.sign(job.data, this.#scheme);
      } catch (e) {
        job.reject(e);
        continue;
      }
      signing.then(job.resolve, job.reject);
    }
  }
}
