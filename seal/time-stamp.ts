/**
 * The seals' time-stamp requests (RFC 3161): the signature-time-stamp of every seal (cms.ts) and
 * the document time-stamp of B-LTA (archive.ts). This runs once per seal, so it avoids asn1js
 * object trees, which cost more than the rest of a CAdES seal:
 *   - the TimeStampReq is a DER template (tsa/asn1.ts) encoded once by asn1js, into which the
 *     imprint and a fresh nonce are written;
 *   - the reply is checked by stepping over its DER (common/der.ts): status granted, and a
 *     well-formed TSTInfo of the right shape whose messageImprint is the one asked for (s2.4.2:
 *     "MUST have the same value as the similar field in TimeStampReq") and whose nonce is ours.
 * A reply that this does not recognise (a refusal, grantedWithMods, a shape it does not expect)
 * goes to tsa/fast-client.ts's grantedTokenFor, which accepts it or says why not.
 */
import { randomFillSync } from 'node:crypto';
import * as asn1js from 'asn1js';
import { derChild, derChildren, derContentEquals, derEquals, derTlv, derWellFormed, type Tlv } from '../common/der.ts';
import { YinxinError } from '../common/errors.ts';
import { DER_TAG, DerTemplate, encode, hex, primitiveTlv, sequenceOf, TSA_OID } from '../tsa/asn1.ts';
import { grantedTokenFor } from '../tsa/fast-client.ts';
import { TSA_HASHES } from '../tsa/request.ts';

/** Asks yinxin's TSA: TimeStampReq DER in, TimeStampResp DER out (TimeStampAuthority.respond, or an HTTP client). */
export type TimeStamper = (queryDer: Uint8Array) => Promise<Uint8Array>;

const IMPRINT_LENGTH = TSA_HASHES['SHA-256'].length;
const NONCE_LENGTH = 8;

/** MessageImprint ::= SEQUENCE { hashAlgorithm (SHA-256, parameters absent), hashedMessage OCTET STRING } */
const messageImprintTemplate = new DerTemplate(sequenceOf(
  { fixed: encode(new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: TSA_HASHES['SHA-256'].oid })] })) },
  { slot: 'hashedMessage', length: 2 + IMPRINT_LENGTH },
));

/** TimeStampReq ::= SEQUENCE { version v1, messageImprint, nonce, certReq TRUE } (s2.4.1; no policy, no extensions). */
const queryTemplate = new DerTemplate(sequenceOf(
  { fixed: encode(new asn1js.Integer({ value: 1 })) },
  { slot: 'messageImprint', length: messageImprintTemplate.bytes.length },
  { slot: 'nonce', length: 2 + NONCE_LENGTH },
  { fixed: encode(new asn1js.Boolean({ value: true })) },
));

/** PKIStatusInfo of a plain grant: SEQUENCE { INTEGER 0 }, no statusString, no failInfo. */
const GRANTED = encode(new asn1js.Sequence({ value: [new asn1js.Integer({ value: 0 })] }));
const TST_INFO_OID = encode(new asn1js.ObjectIdentifier({ value: TSA_OID.tstInfo }));
const TAG = { integer: 0x02, octetString: 0x04, sequence: 0x30, boolean: 0x01, objectIdentifier: 0x06, generalizedTime: 0x18, context0: 0xa0, context1: 0xa1 } as const;

/** Nonces from the CSPRNG, 256 at a time. */
let noncePool = new Uint8Array(0);
let nonceAt = 0;

function freshNonce(): Uint8Array {
  if (nonceAt === noncePool.length) {
    noncePool = randomFillSync(new Uint8Array(NONCE_LENGTH * 256));
    nonceAt = 0;
  }
  const nonce = noncePool.slice(nonceAt, (nonceAt += NONCE_LENGTH));
  // Positive and minimally encoded in 8 octets: top bit clear, next bit set.
  nonce[0] = (nonce[0] & 0x7f) | 0x40;
  return nonce;
}

export interface SealTimeStampQuery {
  der: Uint8Array;
  imprint: Uint8Array;
  /** The MessageImprint DER as sent. */
  messageImprint: Uint8Array;
  /** The nonce's content octets. */
  nonce: Uint8Array;
}

/** A TimeStampReq for a SHA-256 `imprint` with a fresh 63-bit nonce and certReq TRUE. */
export function sealTimeStampQuery(imprint: Uint8Array): SealTimeStampQuery {
  if (imprint.length !== IMPRINT_LENGTH) throw new YinxinError('internal', `a SHA-256 imprint is ${IMPRINT_LENGTH} octets`);
  const nonce = freshNonce();
  const messageImprint = messageImprintTemplate.fill({ hashedMessage: primitiveTlv(DER_TAG.octetString, imprint) });
  const der = queryTemplate.fill({ messageImprint, nonce: primitiveTlv(DER_TAG.integer, nonce) });
  return { der, imprint, messageImprint, nonce };
}

function child(der: Uint8Array, parent: Tlv | undefined, index: number, tag: number): Tlv | undefined {
  if (!parent) return undefined;
  const found = derChild(der, parent, index);
  return found?.tag === tag ? found : undefined;
}

/**
 * The token of `reply` if it is a plain grant whose TSTInfo answers `query`; undefined for
 * anything else (which the full reader then judges).
 */
export function grantedTokenQuick(query: SealTimeStampQuery, reply: Uint8Array): Uint8Array | undefined {
  const response = derTlv(reply, 0);
  if (!response || response.tag !== TAG.sequence || response.end !== reply.length) return undefined;
  const fields = derChildren(reply, response);
  if (!fields || fields.length !== 2 || !derEquals(reply, fields[0], GRANTED)) return undefined;
  // TimeStampToken: ContentInfo { contentType, [0] SignedData { version, digestAlgorithms,
  // encapContentInfo { eContentType id-ct-TSTInfo, [0] { OCTET STRING TSTInfo } }, ... } } (s2.4.2, RFC 5652 s5.1)
  const token = fields[1].tag === TAG.sequence ? fields[1] : undefined;
  const signedData = child(reply, child(reply, token, 1, TAG.context0), 0, TAG.sequence);
  const encap = child(reply, signedData, 2, TAG.sequence);
  const eContentType = child(reply, encap, 0, TAG.objectIdentifier);
  const eContent = child(reply, child(reply, encap, 1, TAG.context0), 0, TAG.octetString);
  if (!token || !eContentType || !eContent || !derEquals(reply, eContentType, TST_INFO_OID)) return undefined;
  const tstInfo = derTlv(reply, eContent.contentStart, eContent.end);
  if (!tstInfo || tstInfo.tag !== TAG.sequence || tstInfo.end !== eContent.end) return undefined;
  // TSTInfo: version, policy, messageImprint, serialNumber, genTime, accuracy OPTIONAL,
  // ordering DEFAULT FALSE, nonce OPTIONAL, tsa [0] OPTIONAL, extensions [1] OPTIONAL.
  const info = derChildren(reply, tstInfo);
  if (!info || info.length < 6 || !derWellFormed(reply, tstInfo) || !derEquals(reply, info[2], query.messageImprint)) return undefined;
  if (info[0].tag !== TAG.integer || info[1].tag !== TAG.objectIdentifier || info[3].tag !== TAG.integer || info[4].tag !== TAG.generalizedTime) return undefined;
  let at = 5;
  if (info[at]?.tag === TAG.sequence) at++;
  if (info[at]?.tag === TAG.boolean) at++;
  const nonce = info[at];
  if (!nonce || nonce.tag !== TAG.integer || !derContentEquals(reply, nonce, query.nonce)) return undefined;
  // Then only tsa [0] and extensions [1], each optional.
  at++;
  if (info[at]?.tag === TAG.context0) at++;
  if (info[at]?.tag === TAG.context1) at++;
  if (at !== info.length) return undefined;
  return reply.subarray(token.start, token.end);
}

/**
 * Asks the TSA to stamp a SHA-256 `imprint` and returns the granted token. Everything that can go
 * wrong becomes 'time-not-available', whose message starts with `need` (what wanted the time).
 */
export async function timeStampImprint(imprint: Uint8Array, timeStamper: TimeStamper, need: string): Promise<Uint8Array> {
  const query = sealTimeStampQuery(imprint);
  let reply: Uint8Array;
  try {
    reply = await timeStamper(query.der);
  } catch (e) {
    throw new YinxinError('time-not-available', `${need} and the TSA failed: ${(e as Error).message}`, undefined, { cause: e });
  }
  return grantedTokenQuick(query, reply)
    ?? grantedTokenFor({ der: query.der, hash: 'SHA-256', imprint, nonce: BigInt(`0x${hex(query.nonce)}`) }, reply);
}
