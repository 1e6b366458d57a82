/**
 * Signatures asked for within one event-loop turn, handed to the signer together on the next
 * (setImmediate): after the work already queued for that turn, so that a TSA's ledger commit
 * (asked for in the same turn, just before its token's signature) is handed to the commit thread
 * before the main thread spends its time signing, and the fsync and the signatures overlap; the
 * key store then sees the turn's requests as one batch (hsm/pkcs11.ts). For services that sign
 * per request at high rates (TSA tokens, OCSP responses with a nonce).
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
