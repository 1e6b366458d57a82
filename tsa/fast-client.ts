/**
 * The RFC 3161 client's hot path, for callers that stamp on every operation (the seal service's
 * signature-time-stamp): a TimeStampReq built with asn1js alone (the hash AlgorithmIdentifier and
 * the version are encoded once), and a TimeStampResp read with asn1js alone, checking that the
 * token answers this query (imprint and nonce). client.ts keeps the pkijs versions for the CLI and
 * for full verification; pkijs' schema matching costs milliseconds per reply here.
 */
import { randomBytes } from 'node:crypto';
import * as asn1js from 'asn1js';
import { YinxinError } from '../common/errors.ts';
import { derChildren, derTlv, type Tlv } from '../common/der.ts';
import { toArrayBuffer } from '../common/pem.ts';
import { encode, hex, preencoded } from './asn1.ts';
import type { TimeStampQuery } from './client.ts';
import { FailInfo, PKIStatus, type FailInfoName } from './failure.ts';
import { TSA_HASHES, type TsaHashName } from './request.ts';

/** version INTEGER v1 followed by the imprint's AlgorithmIdentifier (parameters absent), per hash. */
const queryHeads = new Map<TsaHashName, { version: asn1js.BaseBlock; algorithm: asn1js.BaseBlock; certReq: asn1js.BaseBlock }>();

function queryHead(hash: TsaHashName) {
  let head = queryHeads.get(hash);
  if (!head) {
    head = {
      version: preencoded(encode(new asn1js.Integer({ value: 1 }))),
      algorithm: preencoded(encode(new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: TSA_HASHES[hash].oid })] }))),
      certReq: preencoded(encode(new asn1js.Boolean({ value: true }))),
    };
    queryHeads.set(hash, head);
  }
  return head;
}

/**
 * TimeStampReq (RFC 3161 s2.4.1) for an imprint already computed (`imprint` is the hash of the
 * data under `hash`), with a fresh random 63-bit nonce and certReq TRUE, no policy.
 */
export function quickTimeStampQuery(imprint: Uint8Array, hash: TsaHashName = 'SHA-256'): TimeStampQuery {
  if (imprint.length !== TSA_HASHES[hash].length) throw new YinxinError('bad-request', `a ${hash} imprint is ${TSA_HASHES[hash].length} octets`);
  const head = queryHead(hash);
  // Positive and minimally encoded: top bit clear, second bit set (so no leading zero octet), odd.
  const nonceOctets = randomBytes(8);
  nonceOctets[0] = (nonceOctets[0] & 0x7f) | 0x40;
  nonceOctets[7] |= 1;
  const query = new asn1js.Sequence({
    value: [
      head.version,
      new asn1js.Sequence({ value: [head.algorithm, new asn1js.OctetString({ valueHex: imprint })] }),
      new asn1js.Integer({ valueHex: nonceOctets }),
      head.certReq,
    ],
  });
  return { der: encode(query), hash, imprint, nonce: BigInt(`0x${nonceOctets.toString('hex')}`) };
}

export interface QuickReply {
  status: number;
  statusText: string[];
  failInfo: FailInfoName[];
  /** The TimeStampToken (ContentInfo DER) when the reply carries one. */
  token: Uint8Array | undefined;
}

function children(block: asn1js.BaseBlock | undefined, what: string): asn1js.BaseBlock[] {
  const value = (block as asn1js.Constructed | undefined)?.valueBlock?.value;
  if (!block || !block.idBlock.isConstructed || !Array.isArray(value)) throw new YinxinError('malformed-der', `${what} is not constructed`);
  return value as asn1js.BaseBlock[];
}

function parseWhole(der: Uint8Array, what: string): asn1js.BaseBlock {
  const parsed = asn1js.fromBER(toArrayBuffer(der));
  if (parsed.offset === -1 || parsed.offset !== der.length) throw new YinxinError('malformed-der', `${what} is not one DER value`);
  return parsed.result;
}

/**
 * The DER readers of common/der.ts, refusing with malformed-der where they answer undefined. They
 * step over the parts of a reply this reader does not need (the token's certificates, signature)
 * so that asn1js decodes only the small leaves read here: a full asn1js parse of a reply with the
 * TSA certificate costs several times the rest of a seal.
 */
function tlvAt(der: Uint8Array, start: number, limit: number, what: string): Tlv {
  const tlv = derTlv(der, start, limit);
  if (!tlv) throw new YinxinError('malformed-der', `${what}: truncated, or not DER (multi-octet tag, indefinite or oversized length)`);
  return tlv;
}

function tlvChildren(der: Uint8Array, parent: Tlv, what: string, max = Infinity): Tlv[] {
  const children = derChildren(der, parent, max);
  if (!children) throw new YinxinError('malformed-der', `${what}: not a constructed value whose contents are DER values`);
  return children;
}

function expectTag(t: Tlv | undefined, tag: number, what: string): Tlv {
  if (!t || t.tag !== tag) throw new YinxinError('malformed-der', `${what} has the wrong type`);
  return t;
}

const SEQUENCE = 0x30;
const OCTET_STRING = 0x04;
const CONTEXT_0 = 0xa0;

/** TimeStampResp ::= SEQUENCE { status PKIStatusInfo, timeStampToken TimeStampToken OPTIONAL } (s2.4.2). */
export function readTimeStampReply(der: Uint8Array): QuickReply {
  const outer = expectTag(tlvAt(der, 0, der.length, 'TimeStampResp'), SEQUENCE, 'TimeStampResp');
  if (outer.end !== der.length) throw new YinxinError('malformed-der', 'the TimeStampResp is not one DER value');
  const [statusTlv, tokenTlv, extra] = tlvChildren(der, outer, 'TimeStampResp');
  if (extra) throw new YinxinError('malformed-der', 'the TimeStampResp has more than two fields');
  const statusInfo = children(parseWhole(der.subarray(expectTag(statusTlv, SEQUENCE, 'PKIStatusInfo').start, statusTlv.end), 'PKIStatusInfo'), 'PKIStatusInfo');
  const statusBlock = statusInfo[0];
  if (!(statusBlock instanceof asn1js.Integer)) throw new YinxinError('malformed-der', 'PKIStatus is not an INTEGER');
  const statusText: string[] = [];
  const failInfo: FailInfoName[] = [];
  for (const field of statusInfo.slice(1)) {
    if (field instanceof asn1js.Sequence) {
      for (const s of field.valueBlock.value) if (s instanceof asn1js.Utf8String) statusText.push(s.valueBlock.value);
    } else if (field instanceof asn1js.BitString) {
      const bits = field.valueBlock.valueHexView;
      for (const [name, bit] of Object.entries(FailInfo) as Array<[FailInfoName, number]>) {
        if (bits[bit >> 3] !== undefined && bits[bit >> 3] & (0x80 >> (bit & 7))) failInfo.push(name);
      }
    }
  }
  if (tokenTlv) expectTag(tokenTlv, SEQUENCE, 'TimeStampToken');
  return {
    status: statusBlock.valueBlock.valueDec,
    statusText,
    failInfo,
    token: tokenTlv ? der.slice(tokenTlv.start, tokenTlv.end) : undefined,
  };
}

/**
 * ContentInfo -> SignedData -> encapContentInfo -> eContent TSTInfo -> messageImprint.hashedMessage
 * and nonce. Only the TSTInfo is decoded (asn1js); the path to it is stepped over TLV by TLV.
 */
export function tokenImprintAndNonce(token: Uint8Array): { imprint: Uint8Array; nonce: bigint | undefined } {
  const contentInfo = expectTag(tlvAt(token, 0, token.length, 'ContentInfo'), SEQUENCE, 'ContentInfo');
  const [, content] = tlvChildren(token, contentInfo, 'ContentInfo', 2);
  const [signedData] = tlvChildren(token, expectTag(content, CONTEXT_0, 'ContentInfo.content'), 'ContentInfo.content', 1);
  const [, , encap] = tlvChildren(token, expectTag(signedData, SEQUENCE, 'SignedData'), 'SignedData', 3);
  const [, eContentWrapper] = tlvChildren(token, expectTag(encap, SEQUENCE, 'EncapsulatedContentInfo'), 'EncapsulatedContentInfo', 2);
  const [eContent] = tlvChildren(token, expectTag(eContentWrapper, CONTEXT_0, 'eContent'), 'eContent', 1);
  // DER (RFC 5652 s5.2 asks for DER of the token's signed parts): a primitive OCTET STRING.
  expectTag(eContent, OCTET_STRING, 'eContent');
  const tstInfo = children(parseWhole(token.subarray(eContent.contentStart, eContent.end), 'the TSTInfo'), 'TSTInfo');
  const hashed = children(tstInfo[2], 'MessageImprint')[1];
  if (!(hashed instanceof asn1js.OctetString)) throw new YinxinError('malformed-der', 'hashedMessage is not an OCTET STRING');
  // After genTime (index 4): accuracy SEQUENCE, ordering BOOLEAN, then nonce INTEGER, all optional.
  const nonceBlock = tstInfo.slice(5).find((b) => b instanceof asn1js.Integer) as asn1js.Integer | undefined;
  const nonce = nonceBlock ? BigInt(`0x${hex(nonceBlock.valueBlock.valueHexView) || '0'}`) : undefined;
  return { imprint: new Uint8Array(hashed.valueBlock.valueHexView), nonce };
}

/**
 * The token of a granted reply that answers `query` (same imprint, same nonce). Throws
 * YinxinError 'time-not-available' (details.failInfo when the TSA refused) for anything else.
 */
export function grantedTokenFor(query: TimeStampQuery, reply: Uint8Array): Uint8Array {
  let parsed: QuickReply;
  try {
    parsed = readTimeStampReply(reply);
  } catch (e) {
    throw new YinxinError('time-not-available', 'the TSA answered with something that is not a TimeStampResp', undefined, { cause: e });
  }
  if ((parsed.status !== PKIStatus.granted && parsed.status !== PKIStatus.grantedWithMods) || !parsed.token) {
    throw new YinxinError('time-not-available', `the TSA refused the time-stamp: ${parsed.failInfo.join(', ') || 'no reason'} ${parsed.statusText.join(' ')}`.trim(), { failInfo: parsed.failInfo });
  }
  try {
    const { imprint, nonce } = tokenImprintAndNonce(parsed.token);
    if (Buffer.compare(Buffer.from(imprint), Buffer.from(query.imprint)) !== 0 || nonce !== query.nonce) throw new Error('imprint or nonce mismatch');
  } catch (e) {
    throw new YinxinError('time-not-available', 'the TSA returned a token that is not for this query', undefined, { cause: e });
  }
  return parsed.token;
}
