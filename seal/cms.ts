/**
 * CMS SignedData for seals (RFC 5652), shared by PAdES (ETSI EN 319 142-1) and CAdES
 * (ETSI EN 319 122-1) baseline B-T: detached content (id-data, no eContent), signed attributes
 * content-type, message-digest, signing-certificate-v2 (RFC 5035, the same encoder the TSA uses)
 * and, for CAdES only, signing-time (PAdES carries the time in /M); the signer's chain in
 * `certificates`; and the signature-time-stamp unsigned attribute (RFC 3161 Appendix A) over the
 * SignerInfo's signature value, from yinxin's TSA. A TSA that fails fails the whole seal: a B-B
 * signature is never produced silently.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { YinxinError } from '../common/errors.ts';
import { toArrayBuffer } from '../common/pem.ts';
import { digestAlgorithm, hashOfScheme, signatureAlgorithm } from '../hsm/algorithms.ts';
import type { HashName, Signer } from '../hsm/signer.ts';
import { compareDer, TSA_OID } from '../tsa/asn1.ts';
import { buildTimeStampQuery, parseTimeStampResponse } from '../tsa/client.ts';
import { PKIStatus } from '../tsa/failure.ts';
import { signingCertificateV2 } from '../tsa/token.ts';

export const CMS_OID = {
  data: '1.2.840.113549.1.7.1',
  signedData: TSA_OID.signedData,
  contentType: TSA_OID.contentType,
  messageDigest: TSA_OID.messageDigest,
  signingTime: '1.2.840.113549.1.9.5',
  signingCertificateV2: TSA_OID.signingCertificateV2,
  /** RFC 3161 Appendix A: id-aa-signatureTimeStampToken */
  signatureTimeStampToken: '1.2.840.113549.1.9.16.2.14',
} as const;

/** Asks yinxin's TSA: TimeStampReq DER in, TimeStampResp DER out (TimeStampAuthority.respond, or an HTTP client). */
export type TimeStamper = (queryDer: Uint8Array) => Promise<Uint8Array>;

export interface SealCredential {
  signer: Signer;
  /** The seal certificate (DER). */
  certificate: Uint8Array;
  /** Issuing CA up to the root (DER), placed in the SignedData. */
  chain: Uint8Array[];
}

export interface SignedDataInput extends SealCredential {
  /** Digest of the signed content (the PDF byte ranges, or the whole file) under `hash`. */
  contentDigest: Uint8Array;
  hash: HashName;
  /** CAdES: signing-time attribute; PAdES leaves it out (ETSI EN 319 142-1 s5.4.3). */
  signingTime?: Date;
  timeStamper: TimeStamper;
}

const nodeHash: Record<HashName, string> = { 'SHA-256': 'sha256', 'SHA-384': 'sha384', 'SHA-512': 'sha512' };

/** The content digest algorithm that goes with a seal key's signature scheme. */
export function sealHash(signer: Signer): HashName {
  return hashOfScheme(signer.scheme) ?? 'SHA-512';
}

export function digest(hash: HashName, parts: Iterable<Uint8Array>): Uint8Array {
  const h = createHash(nodeHash[hash]);
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

function attribute(type: string, value: asn1js.BaseBlock): pkijs.Attribute {
  return new pkijs.Attribute({ type, values: [value] });
}

function der(block: { toBER(sizeOnly?: boolean): ArrayBuffer }): Uint8Array {
  return new Uint8Array(block.toBER(false));
}

/**
 * Stamps `signature` (RFC 3161 Appendix A: the imprint is the hash of the signature value's
 * octets) and returns the token. Everything that can go wrong becomes 'time-not-available'.
 */
export async function signatureTimeStamp(signature: Uint8Array, timeStamper: TimeStamper): Promise<Uint8Array> {
  const query = buildTimeStampQuery(signature, { hash: 'SHA-256', certReq: true, nonce: BigInt(`0x${randomBytes(8).toString('hex')}`) | 1n });
  let reply: Uint8Array;
  try {
    reply = await timeStamper(query.der);
  } catch (e) {
    throw new YinxinError('time-not-available', `the seal needs a signature time-stamp and the TSA failed: ${(e as Error).message}`, undefined, { cause: e });
  }
  let parsed;
  try {
    parsed = parseTimeStampResponse(reply);
  } catch (e) {
    throw new YinxinError('time-not-available', 'the TSA answered with something that is not a TimeStampResp', undefined, { cause: e });
  }
  if ((parsed.status !== PKIStatus.granted && parsed.status !== PKIStatus.grantedWithMods) || !parsed.token) {
    throw new YinxinError('time-not-available', `the TSA refused the signature time-stamp: ${parsed.failInfo.join(', ') || 'no reason'} ${parsed.statusText.join(' ')}`.trim(), { failInfo: parsed.failInfo });
  }
  // The token must be for this signature and this request: a TSA answering the wrong query is down too.
  // Read with asn1js alone (pkijs' schema matching costs ~10 ms per token here, RFC 3161 s2.4.2 layout).
  try {
    const { imprint, nonce } = tokenImprintAndNonce(parsed.token);
    if (Buffer.compare(Buffer.from(imprint), Buffer.from(query.imprint)) !== 0 || nonce !== query.nonce) throw new Error('imprint or nonce mismatch');
  } catch (e) {
    throw new YinxinError('time-not-available', 'the TSA returned a token that is not for this signature', undefined, { cause: e });
  }
  return parsed.token;
}

/** ContentInfo -> SignedData -> encapContentInfo -> eContent TSTInfo -> messageImprint.hashedMessage and nonce. */
function tokenImprintAndNonce(token: Uint8Array): { imprint: Uint8Array; nonce: bigint | undefined } {
  const seq = (b: asn1js.BaseBlock | undefined, what: string): asn1js.BaseBlock[] => {
    const v = (b as asn1js.Constructed | undefined)?.valueBlock?.value;
    if (!Array.isArray(v)) throw new Error(`${what} is not constructed`);
    return v as asn1js.BaseBlock[];
  };
  const contentInfo = asn1js.fromBER(toArrayBuffer(token)).result;
  const signedData = seq(seq(contentInfo, 'ContentInfo')[1], '[0]')[0];
  const encap = seq(signedData, 'SignedData')[2];
  const eContent = seq(seq(encap, 'EncapsulatedContentInfo')[1], '[0]')[0];
  if (!(eContent instanceof asn1js.OctetString)) throw new Error('eContent is not an OCTET STRING');
  const octets = eContent.valueBlock.isConstructed
    ? Buffer.concat((eContent.valueBlock.value as asn1js.OctetString[]).map((o) => Buffer.from(o.valueBlock.valueHexView)))
    : Buffer.from(eContent.valueBlock.valueHexView);
  const tstInfo = seq(asn1js.fromBER(toArrayBuffer(new Uint8Array(octets))).result, 'TSTInfo');
  const hashed = seq(tstInfo[2], 'MessageImprint')[1];
  if (!(hashed instanceof asn1js.OctetString)) throw new Error('hashedMessage is not an OCTET STRING');
  // After genTime (index 4): accuracy SEQUENCE, ordering BOOLEAN, then nonce INTEGER, all optional.
  const nonceBlock = tstInfo.slice(5).find((b) => b instanceof asn1js.Integer) as asn1js.Integer | undefined;
  const nonce = nonceBlock ? BigInt(`0x${Buffer.from(nonceBlock.valueBlock.valueHexView).toString('hex') || '0'}`) : undefined;
  return { imprint: new Uint8Array(hashed.valueBlock.valueHexView), nonce };
}

/**
 * Builds, signs and time-stamps a detached SignedData (ContentInfo DER). One HSM signature, one
 * time-stamp request.
 */
export async function buildSignedData(input: SignedDataInput): Promise<Uint8Array> {
  const { signer, hash } = input;
  let certificate: pkijs.Certificate;
  let chain: pkijs.Certificate[];
  try {
    certificate = pkijs.Certificate.fromBER(toArrayBuffer(input.certificate));
    chain = input.chain.map((c) => pkijs.Certificate.fromBER(toArrayBuffer(c)));
  } catch (e) {
    throw new YinxinError('config-invalid', 'the seal certificate or its chain is not DER X.509', undefined, { cause: e });
  }
  if (Buffer.compare(Buffer.from(der(certificate.subjectPublicKeyInfo.toSchema())), Buffer.from(signer.publicKeyInfo)) !== 0) {
    throw new YinxinError('config-invalid', `the seal certificate does not certify HSM key "${signer.label}"`);
  }
  const attributes = [
    attribute(CMS_OID.contentType, new asn1js.ObjectIdentifier({ value: CMS_OID.data })),
    attribute(CMS_OID.messageDigest, new asn1js.OctetString({ valueHex: toArrayBuffer(input.contentDigest) })),
    attribute(CMS_OID.signingCertificateV2, signingCertificateV2(input.certificate, certificate)),
  ];
  // RFC 5652 s11.3: UTCTime through 2049, GeneralizedTime after.
  if (input.signingTime) {
    const t = new Date(Math.floor(input.signingTime.getTime() / 1000) * 1000);
    attributes.push(attribute(CMS_OID.signingTime, t.getUTCFullYear() < 2050 ? new asn1js.UTCTime({ valueDate: t }) : new asn1js.GeneralizedTime({ valueDate: t })));
  }
  // X.690 s11.6: DER SET OF sorts by encoding; pkijs writes the attributes in array order.
  const encoded = attributes.map((a) => ({ a, d: der(a.toSchema()) })).sort((x, y) => compareDer(x.d, y.d));
  const sortedAttributes = encoded.map((e) => e.a);
  // RFC 5652 s5.4: the signature covers the attributes' DER with an explicit SET OF tag.
  const toBeSigned = der(new asn1js.Set({ value: encoded.map((e) => asn1js.fromBER(toArrayBuffer(e.d)).result) }));
  const signature = await signer.sign(toBeSigned, signer.scheme);
  const token = await signatureTimeStamp(signature, input.timeStamper);

  const signerInfo = new pkijs.SignerInfo({
    version: 1,
    sid: new pkijs.IssuerAndSerialNumber({ issuer: certificate.issuer, serialNumber: certificate.serialNumber }),
    digestAlgorithm: digestAlgorithm(hash),
    signedAttrs: new pkijs.SignedAndUnsignedAttributes({ type: 0, attributes: sortedAttributes }),
    signatureAlgorithm: signatureAlgorithm(signer.scheme),
    signature: new asn1js.OctetString({ valueHex: toArrayBuffer(signature) }),
    unsignedAttrs: new pkijs.SignedAndUnsignedAttributes({
      type: 1,
      attributes: [attribute(CMS_OID.signatureTimeStampToken, asn1js.fromBER(toArrayBuffer(token)).result)],
    }),
  });
  const signedData = new pkijs.SignedData({
    version: 1,
    digestAlgorithms: [digestAlgorithm(hash)],
    encapContentInfo: new pkijs.EncapsulatedContentInfo({ eContentType: CMS_OID.data }),
    certificates: [certificate, ...chain],
    signerInfos: [signerInfo],
  });
  const contentInfo = new pkijs.ContentInfo({ contentType: CMS_OID.signedData, content: signedData.toSchema() });
  return der(contentInfo.toSchema());
}
