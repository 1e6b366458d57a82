/**
 * Detached CAdES baseline B-T (ETSI EN 319 122-1 s5, level B-T): a .p7s over any file, with
 * signing-certificate-v2, signing-time and a signature-time-stamp from yinxin's TSA.
 */
import type { Clock } from '../common/clock.ts';
import { YinxinError } from '../common/errors.ts';
import type { HashName } from '../hsm/signer.ts';
import { buildSignedData, digest, sealHash, type SealCredential, type TimeStamper } from './cms.ts';

export interface CadesInput extends SealCredential {
  timeStamper: TimeStamper;
  clock: Clock;
  /** Called once the HSM has signed, just before the time-stamp is asked for. */
  onSigned?: () => void;
}

/** The .p7s (DER ContentInfo) for `content`; `content` may also be its chunks, hashed in order. */
export async function sealFileCades(content: Uint8Array | Iterable<Uint8Array>, input: CadesInput): Promise<Uint8Array> {
  const hash = sealHash(input.signer);
  return sealDigestCades(digest(hash, content instanceof Uint8Array ? [content] : content), hash, input);
}

/**
 * The .p7s for content already hashed: `contentDigest` under `hash`, which must be sealHash(input.signer).
 * Not an async function, on the hot path of every seal: one promise fewer; it never throws, it rejects.
 */
export function sealDigestCades(contentDigest: Uint8Array, hash: HashName, input: CadesInput): Promise<Uint8Array> {
  if (hash !== sealHash(input.signer)) return Promise.reject(new YinxinError('internal', `a ${input.signer.scheme} seal digests with ${sealHash(input.signer)}, not ${hash}`));
  return buildSignedData({ ...input, hash, contentDigest, signingTime: input.clock.now() });
}
