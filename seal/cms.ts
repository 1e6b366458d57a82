/**
 * CMS SignedData for seals (RFC 5652), shared by PAdES (ETSI EN 319 142-1) and CAdES
 * (ETSI EN 319 122-1) baseline B-T: detached content (id-data, no eContent), signed attributes
 * content-type, message-digest, signing-certificate-v2 (RFC 5035, the same encoder the TSA uses)
 * and, for CAdES only, signing-time (PAdES carries the time in /M); the signer's chain in
 * `certificates`; and the signature-time-stamp unsigned attribute (RFC 3161 Appendix A) over the
 * SignerInfo's signature value, from yinxin's TSA. A TSA that fails fails the whole seal: a B-B
 * signature is never produced silently.
 */
import { createHash } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { YinxinError } from '../common/errors.ts';
import { toArrayBuffer } from '../common/pem.ts';
import { digestAlgorithm, hashOfScheme, signatureAlgorithmDer } from '../hsm/algorithms.ts';
import type { HashName, SignatureScheme, Signer } from '../hsm/signer.ts';
import { compareDer, encode, preencoded, TSA_OID } from '../tsa/asn1.ts';
import { grantedTokenFor, quickTimeStampQuery } from '../tsa/fast-client.ts';
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

/** Attribute ::= SEQUENCE { attrType OBJECT IDENTIFIER, attrValues SET OF AttributeValue } (RFC 5652 s5.3) */
function attribute(type: string, value: asn1js.BaseBlock): asn1js.Sequence {
  return new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: type }), new asn1js.Set({ value: [value] })] });
}

/** [n] IMPLICIT SET OF / CHOICE wrapper of context class, constructed. */
function tagged(tagNumber: number, value: asn1js.BaseBlock[]): asn1js.Constructed {
  return new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber }, value });
}

/**
 * Asks the TSA to stamp a SHA-256 `imprint` and returns the granted token. Everything that can go
 * wrong becomes 'time-not-available', whose message starts with `need` (what wanted the time).
 */
export async function timeStampImprint(imprint: Uint8Array, timeStamper: TimeStamper, need: string): Promise<Uint8Array> {
  const query = quickTimeStampQuery(imprint, 'SHA-256');
  let reply: Uint8Array;
  try {
    reply = await timeStamper(query.der);
  } catch (e) {
    throw new YinxinError('time-not-available', `${need} and the TSA failed: ${(e as Error).message}`, undefined, { cause: e });
  }
  return grantedTokenFor(query, reply);
}

/** Stamps `signature` (RFC 3161 Appendix A: the imprint is the hash of the signature value's octets). */
export async function signatureTimeStamp(signature: Uint8Array, timeStamper: TimeStamper): Promise<Uint8Array> {
  return timeStampImprint(digest('SHA-256', [signature]), timeStamper, 'the seal needs a signature time-stamp');
}

/**
 * The parts of a seal's SignedData that are the same for every seal made with one credential
 * (certificate and chain) and digest algorithm, encoded once with asn1js/pkijs: the SignedData
 * head (version, digestAlgorithms, encapContentInfo, certificates), the SignerInfo head (version,
 * sid, digestAlgorithm), the content-type and signing-certificate-v2 attributes and the
 * signatureAlgorithm. Per seal only message-digest, signing-time, the signature and the
 * time-stamp token are encoded and placed beside them (the technique of tsa/token.ts).
 */
export class SealCmsWriter {
  /** The seal certificate's SubjectPublicKeyInfo (DER): the signer must hold its private half. */
  readonly publicKeyInfo: Uint8Array;
  readonly hash: HashName;
  readonly #signedDataHead: asn1js.BaseBlock;
  readonly #signerInfoHead: asn1js.BaseBlock;
  readonly #fixedAttributes: Uint8Array[];
  readonly #signatureAlgorithms = new Map<SignatureScheme, asn1js.BaseBlock>();
  readonly #contentInfoOid: asn1js.BaseBlock;
  readonly #timeStampOid: asn1js.BaseBlock;

  constructor(credential: Pick<SealCredential, 'certificate' | 'chain'>, hash: HashName) {
    let certificate: pkijs.Certificate;
    let chain: asn1js.BaseBlock[];
    try {
      certificate = pkijs.Certificate.fromBER(toArrayBuffer(credential.certificate));
      // Checked as certificates once; placed in the SignedData as the bytes given.
      chain = credential.chain.map((c) => {
        pkijs.Certificate.fromBER(toArrayBuffer(c));
        return preencoded(c);
      });
    } catch (e) {
      throw new YinxinError('config-invalid', 'the seal certificate or its chain is not DER X.509', undefined, { cause: e });
    }
    this.hash = hash;
    this.publicKeyInfo = encode(certificate.subjectPublicKeyInfo.toSchema());
    const digestAlgorithmDer = encode(digestAlgorithm(hash).toSchema());
    // SignedData version 1: id-data content, only X.509 certificates, sid by issuerAndSerialNumber (RFC 5652 s5.1).
    this.#signedDataHead = preencoded(Buffer.concat([
      encode(new asn1js.Integer({ value: 1 })),
      encode(new asn1js.Set({ value: [preencoded(digestAlgorithmDer)] })),
      encode(new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: CMS_OID.data })] })),
      encode(tagged(0, [preencoded(credential.certificate), ...chain])),
    ]));
    const sid = new pkijs.IssuerAndSerialNumber({ issuer: certificate.issuer, serialNumber: certificate.serialNumber });
    this.#signerInfoHead = preencoded(Buffer.concat([encode(new asn1js.Integer({ value: 1 })), encode(sid.toSchema()), digestAlgorithmDer]));
    this.#fixedAttributes = [
      encode(attribute(CMS_OID.contentType, new asn1js.ObjectIdentifier({ value: CMS_OID.data }))),
      encode(attribute(CMS_OID.signingCertificateV2, signingCertificateV2(credential.certificate, certificate))),
    ];
    this.#contentInfoOid = preencoded(encode(new asn1js.ObjectIdentifier({ value: CMS_OID.signedData })));
    this.#timeStampOid = preencoded(encode(new asn1js.ObjectIdentifier({ value: CMS_OID.signatureTimeStampToken })));
  }

  #signatureAlgorithm(scheme: SignatureScheme): asn1js.BaseBlock {
    let block = this.#signatureAlgorithms.get(scheme);
    if (!block) this.#signatureAlgorithms.set(scheme, (block = preencoded(signatureAlgorithmDer(scheme))));
    return block;
  }

  /** Signs (one HSM signature), time-stamps (one TSA request) and returns the ContentInfo DER. */
  async write(input: { signer: Signer; contentDigest: Uint8Array; signingTime?: Date; timeStamper: TimeStamper }): Promise<Uint8Array> {
    const { signer } = input;
    if (Buffer.compare(Buffer.from(this.publicKeyInfo), Buffer.from(signer.publicKeyInfo)) !== 0) {
      throw new YinxinError('config-invalid', `the seal certificate does not certify HSM key "${signer.label}"`);
    }
    const attributes = [
      ...this.#fixedAttributes,
      encode(attribute(CMS_OID.messageDigest, new asn1js.OctetString({ valueHex: input.contentDigest }))),
    ];
    // RFC 5652 s11.3: UTCTime through 2049, GeneralizedTime after.
    if (input.signingTime) {
      const t = new Date(Math.floor(input.signingTime.getTime() / 1000) * 1000);
      attributes.push(encode(attribute(CMS_OID.signingTime, t.getUTCFullYear() < 2050 ? new asn1js.UTCTime({ valueDate: t }) : new asn1js.GeneralizedTime({ valueDate: t }))));
    }
    // X.690 s11.6: a DER SET OF sorts its elements by their encodings.
    const sorted = attributes.sort(compareDer).map(preencoded);
    // RFC 5652 s5.4: the signature covers the attributes' DER with an explicit SET OF tag;
    // the SignerInfo carries the same content under [0] IMPLICIT.
    const signature = await signer.sign(encode(new asn1js.Set({ value: sorted })), signer.scheme);
    const token = await signatureTimeStamp(signature, input.timeStamper);

    const signerInfo = new asn1js.Sequence({
      value: [
        this.#signerInfoHead,
        tagged(0, sorted),
        this.#signatureAlgorithm(signer.scheme),
        new asn1js.OctetString({ valueHex: signature }),
        tagged(1, [new asn1js.Sequence({ value: [this.#timeStampOid, new asn1js.Set({ value: [preencoded(token)] })] })]),
      ],
    });
    const signedData = new asn1js.Sequence({ value: [this.#signedDataHead, new asn1js.Set({ value: [signerInfo] })] });
    return encode(new asn1js.Sequence({ value: [this.#contentInfoOid, tagged(0, [signedData])] }));
  }
}

/**
 * Prepared writers by credential content, so a caller that rebuilds its credential object per seal
 * (the registry reads the certificate from the store each time) still reuses the prepared parts.
 * A pure memo of (certificate, chain, hash): bounded, oldest dropped first.
 */
const writers = new Map<string, SealCmsWriter>();
const MAX_WRITERS = 256;

export function sealCmsWriter(credential: Pick<SealCredential, 'certificate' | 'chain'>, hash: HashName): SealCmsWriter {
  const h = createHash('sha256').update(hash);
  for (const c of [credential.certificate, ...credential.chain]) h.update(String(c.length)).update(c);
  const key = h.digest('hex');
  let writer = writers.get(key);
  if (!writer) {
    writer = new SealCmsWriter(credential, hash);
    if (writers.size >= MAX_WRITERS) writers.delete(writers.keys().next().value!);
    writers.set(key, writer);
  }
  return writer;
}

/**
 * Builds, signs and time-stamps a detached SignedData (ContentInfo DER). One HSM signature, one
 * time-stamp request.
 */
export async function buildSignedData(input: SignedDataInput): Promise<Uint8Array> {
  return sealCmsWriter(input, input.hash).write(input);
}
