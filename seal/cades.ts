/**
 * Detached CAdES baseline B-T (ETSI EN 319 122-1 s5, level B-T): a .p7s over any file, with
 * signing-certificate-v2, signing-time and a signature-time-stamp from yinxin's TSA.
 */
import type { Clock } from '../common/clock.ts';
import { buildSignedData, digest, sealHash, type SealCredential, type TimeStamper } from './cms.ts';

export interface CadesInput extends SealCredential {
  timeStamper: TimeStamper;
  clock: Clock;
}

/** The .p7s (DER ContentInfo) for `content`; `content` may also be its chunks, hashed in order. */
export async function sealFileCades(content: Uint8Array | Iterable<Uint8Array>, input: CadesInput): Promise<Uint8Array> {
  const hash = sealHash(input.signer);
  const parts = content instanceof Uint8Array ? [content] : content;
  return buildSignedData({ ...input, hash, contentDigest: digest(hash, parts), signingTime: input.clock.now() });
}
