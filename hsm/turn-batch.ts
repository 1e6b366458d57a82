/**
 * Signatures asked for within one event-loop turn, handed to the signer together on the next
 * (setImmediate). Requests arrive one per socket callback, so the HSM key store would see each as
 * a lone caller and sign it synchronously on the main thread; handed together, it spreads them
 * over its worker threads (hsm/pkcs11.ts), leaving the main thread to HTTP and encoding. For
 * services that sign per request at high rates (TSA tokens, OCSP responses with a nonce).
 */
import { TurnBatch } from '../common/turn-batch.ts';
import type { SignatureScheme, Signer } from './signer.ts';

interface Job {
  signer: Signer;
  scheme: SignatureScheme;
  data: Uint8Array;
  resolve: (signature: Uint8Array) => void;
  reject: (error: unknown) => void;
}

function release(batch: Job[]): void {
  for (const job of batch) {
    let signing: Promise<Uint8Array>;
    try {
      signing = job.signer.sign(job.data, job.scheme);
    } catch (e) {
      job.reject(e);
      continue;
    }
    signing.then(job.resolve, job.reject);
  }
}

/** One queue for the process: the key store's dispatcher is shared by all keys of a token. */
const queue = new TurnBatch<Job>(release);

/** signer.sign(data, scheme), on the next turn together with everything else asked for in this one. */
export function signNextTurn(signer: Signer, data: Uint8Array, scheme: SignatureScheme = signer.scheme): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    queue.add({ signer, scheme, data, resolve, reject });
  });
}

/** A signer's signNextTurn, for writers that always sign with one key and scheme. */
export class TurnBatchingSigner {
  readonly #signer: Signer;
  readonly #scheme: SignatureScheme;

  constructor(signer: Signer, scheme: SignatureScheme = signer.scheme) {
    this.#signer = signer;
    this.#scheme = scheme;
  }

  sign(data: Uint8Array): Promise<Uint8Array> {
    return signNextTurn(this.#signer, data, this.#scheme);
  }
}
