/**
 * CMS SignedData for seals (RFC 5652), shared by PAdES (ETSI EN 319 142-1) and CAdES
 * (ETSI EN 319 122-1) baseline B-T: detached content (id-data, no eContent), signed attributes
 * content-type, message-digest, signing-certificate-v2 (RFC 5035, the same encoder the TSA uses)
 * and, for CAdES only, signing-time (PAdES carries the time in /M); the signer's chain in
 * `certificates`; and the signature-time-stamp unsigned attribute (RFC 3161 Appendix A) over the
 * SignerInfo's signature value, from yinxin's TSA. A TSA that fails fails the whole seal: a B-B
 * signature is never produced silently.
 */
import { createHash, hash as oneShotHash } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { YinxinError } from '../common/errors.ts';
import { toArrayBuffer } from '../common/pem.ts';
import { digestAlgorithm, hashOfScheme, signatureAlgorithmDer } from '../hsm/algorithms.ts';
import type { HashName, SignatureScheme, Signer } from '../hsm/signer.ts';
import { compareDer, contextOf, DER_TAG, DerTemplate, encode, preencoded, primitiveTlv, sequenceOf, setOf, TSA_OID, type TemplatePart } from '../tsa/asn1.ts';
import { signingCertificateV2 } from '../tsa/token.ts';
import { timeStampImprint, type TimeStamper } from './time-stamp.ts';

export type { TimeStamper } from './time-stamp.ts';

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
  /** Called once the HSM has signed, just before the time-stamp is asked for. */
  onSigned?: () => void;
}

const nodeHash: Record<HashName, string> = { 'SHA-256': 'sha256', 'SHA-384': 'sha384', 'SHA-512': 'sha512' };

/** The content digest algorithm that goes with a seal key's signature scheme. */
export function sealHash(signer: Signer): HashName {
  return hashOfScheme(signer.scheme) ?? 'SHA-512';
}

export function digest(hash: HashName, parts: Iterable<Uint8Array>): Uint8Array {
  // One part (a CAdES file, a signature value): the one-shot hash, without a Hash object.
  if (Array.isArray(parts) && parts.length === 1) return oneShotHash(nodeHash[hash], parts[0], 'buffer');
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

/** An attribute whose single value is the slot `slot` of `length` octets (the value's whole TLV). */
function attributePart(type: string, slot: string, length: number): TemplatePart {
  return sequenceOf({ fixed: encode(new asn1js.ObjectIdentifier({ value: type })) }, setOf({ slot, length }));
}

/** Stamps `signature` (RFC 3161 Appendix A: the imprint is the hash of the signature value's octets). */
export function signatureTimeStamp(signature: Uint8Array, timeStamper: TimeStamper): Promise<Uint8Array> {
  return timeStampImprint(digest('SHA-256', [signature]), timeStamper, 'the seal needs a signature time-stamp');
}

const MAX_TEMPLATES = 64;

/**
 * The DER of a seal's SignedData, prepared once per credential (certificate and chain) and digest
 * algorithm, as tsa/token.ts prepares its tokens: the fixed parts (the SignedData head with
 * version, digestAlgorithms, encapContentInfo and certificates; the SignerInfo head with version,
 * sid and digestAlgorithm; the content-type and signing-certificate-v2 attributes; the
 * signatureAlgorithm) are encoded once with asn1js/pkijs, and the structure around them becomes
 * DER templates (tsa/asn1.ts) whose slots per seal are message-digest, signing-time, the signature
 * and the time-stamp token. A template depends only on the lengths of what fills it, so there are
 * a few per writer (an ECDSA signature is 70 to 72 octets).
 */
export class SealCmsWriter {
  /** The seal certificate's SubjectPublicKeyInfo (DER): the signer must hold its private half. */
  readonly publicKeyInfo: Uint8Array;
  readonly hash: HashName;
  readonly #signedDataHead: Uint8Array;
  readonly #signerInfoHead: Uint8Array;
  readonly #fixedAttributes: Uint8Array[];
  readonly #signatureAlgorithms = new Map<SignatureScheme, Uint8Array>();
  readonly #contentInfoOid: Uint8Array;
  readonly #timeStampOid: Uint8Array;
  /** The message-digest value's TLV length (an OCTET STRING of the digest). */
  readonly #digestLength: number;
  /** By signing-time length (0: none): the signed attributes in DER order, as parts with slots. */
  readonly #attributeParts = new Map<number, { parts: TemplatePart[]; signed: DerTemplate }>();
  readonly #contentInfos = new Map<string, DerTemplate>();
  /** The last signing-time encoded (whole seconds: seals in one second share it). */
  #lastTime: { seconds: number; der: Uint8Array } = { seconds: NaN, der: new Uint8Array(0) };

  constructor(credential: Pick<SealCredential, 'certificate' | 'chain'>, hash: HashName) {
    let certificate: pkijs.Certificate;
    try {
      certificate = pkijs.Certificate.fromBER(toArrayBuffer(credential.certificate));
      // Checked as certificates once; placed in the SignedData as the bytes given.
      for (const c of credential.chain) pkijs.Certificate.fromBER(toArrayBuffer(c));
    } catch (e) {
      throw new YinxinError('config-invalid', 'the seal certificate or its chain is not DER X.509', undefined, { cause: e });
    }
    this.hash = hash;
    this.publicKeyInfo = encode(certificate.subjectPublicKeyInfo.toSchema());
    const digestAlgorithmDer = encode(digestAlgorithm(hash).toSchema());
    // SignedData version 1: id-data content, only X.509 certificates, sid by issuerAndSerialNumber (RFC 5652 s5.1).
    this.#signedDataHead = Buffer.concat([
      encode(new asn1js.Integer({ value: 1 })),
      encode(new asn1js.Set({ value: [preencoded(digestAlgorithmDer)] })),
      encode(new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: CMS_OID.data })] })),
      encode(tagged(0, [credential.certificate, ...credential.chain].map(preencoded))),
    ]);
    const sid = new pkijs.IssuerAndSerialNumber({ issuer: certificate.issuer, serialNumber: certificate.serialNumber });
    this.#signerInfoHead = Buffer.concat([encode(new asn1js.Integer({ value: 1 })), encode(sid.toSchema()), digestAlgorithmDer]);
    this.#fixedAttributes = [
      encode(attribute(CMS_OID.contentType, new asn1js.ObjectIdentifier({ value: CMS_OID.data }))),
      encode(attribute(CMS_OID.signingCertificateV2, signingCertificateV2(credential.certificate, certificate))),
    ];
    this.#digestLength = 2 + createHash(nodeHash[hash]).digest().length;
    this.#contentInfoOid = encode(new asn1js.ObjectIdentifier({ value: CMS_OID.signedData }));
    this.#timeStampOid = encode(new asn1js.ObjectIdentifier({ value: CMS_OID.signatureTimeStampToken }));
  }

  #signatureAlgorithm(scheme: SignatureScheme): Uint8Array {
    let der = this.#signatureAlgorithms.get(scheme);
    if (!der) this.#signatureAlgorithms.set(scheme, (der = signatureAlgorithmDer(scheme)));
    return der;
  }

  /** RFC 5652 s11.3: UTCTime through 2049, GeneralizedTime after; whole seconds. */
  #signingTime(date: Date): Uint8Array {
    const seconds = Math.floor(date.getTime() / 1000);
    if (this.#lastTime.seconds !== seconds) {
      const t = new Date(seconds * 1000);
      this.#lastTime = { seconds, der: encode(t.getUTCFullYear() < 2050 ? new asn1js.UTCTime({ valueDate: t }) : new asn1js.GeneralizedTime({ valueDate: t })) };
    }
    return this.#lastTime.der;
  }

  /**
   * The signed attributes as template parts, sorted as X.690 s11.6 sorts a DER SET OF (by their
   * encodings): attributes differ in their lengths or else in their types' OIDs, both fixed here,
   * before any octet of a value, so the order of the placeholders is the order of every fill.
   */
  #attributes(timeLength: number): { parts: TemplatePart[]; signed: DerTemplate } {
    let entry = this.#attributeParts.get(timeLength);
    if (!entry) {
      const withValue = (part: TemplatePart) => ({ part, placeholder: new DerTemplate(part).bytes });
      const candidates: Array<{ part: TemplatePart; placeholder: Uint8Array }> = [
        ...this.#fixedAttributes.map((der) => ({ part: { fixed: der }, placeholder: der })),
        withValue(attributePart(CMS_OID.messageDigest, 'messageDigest', this.#digestLength)),
      ];
      if (timeLength) candidates.push(withValue(attributePart(CMS_OID.signingTime, 'signingTime', timeLength)));
      const parts = candidates.sort((a, b) => compareDer(a.placeholder, b.placeholder)).map((c) => c.part);
      // RFC 5652 s5.4: the signature covers the attributes' DER with an explicit SET OF tag;
      // the SignerInfo carries the same content under [0] IMPLICIT.
      entry = { parts, signed: new DerTemplate(setOf(...parts)) };
      this.#attributeParts.set(timeLength, entry);
    }
    return entry;
  }

  #contentInfo(scheme: SignatureScheme, timeLength: number, signatureLength: number, tokenLength: number): DerTemplate {
    const key = `${scheme} ${timeLength} ${signatureLength} ${tokenLength}`;
    let template = this.#contentInfos.get(key);
    if (!template) {
      const signerInfo = sequenceOf(
        { fixed: this.#signerInfoHead },
        contextOf(0, ...this.#attributes(timeLength).parts),
        { fixed: this.#signatureAlgorithm(scheme) },
        { slot: 'signature', length: signatureLength },
        contextOf(1, sequenceOf({ fixed: this.#timeStampOid }, setOf({ slot: 'token', length: tokenLength }))),
      );
      const signedData = sequenceOf({ fixed: this.#signedDataHead }, setOf(signerInfo));
      template = new DerTemplate(sequenceOf({ fixed: this.#contentInfoOid }, contextOf(0, signedData)));
      if (this.#contentInfos.size >= MAX_TEMPLATES) this.#contentInfos.clear();
      this.#contentInfos.set(key, template);
    }
    return template;
  }

  /** Signs (one HSM signature), time-stamps (one TSA request) and returns the ContentInfo DER. */
  async write(input: Pick<SignedDataInput, 'signer' | 'contentDigest' | 'signingTime' | 'timeStamper' | 'onSigned'>): Promise<Uint8Array> {
    const { signer } = input;
    if (Buffer.compare(this.publicKeyInfo, signer.publicKeyInfo) !== 0) {
      throw new YinxinError('config-invalid', `the seal certificate does not certify HSM key "${signer.label}"`);
    }
    // Slots filled straight into the signed attributes, then with the same values into the SignerInfo.
    const slots: Record<string, Uint8Array> = { messageDigest: primitiveTlv(DER_TAG.octetString, input.contentDigest) };
    let timeLength = 0;
    if (input.signingTime) {
      slots.signingTime = this.#signingTime(input.signingTime);
      timeLength = slots.signingTime.length;
    }
    const signature = await signer.sign(this.#attributes(timeLength).signed.fill(slots), signer.scheme);
    input.onSigned?.();
    const token = await signatureTimeStamp(signature, input.timeStamper);
    slots.signature = primitiveTlv(DER_TAG.octetString, signature);
    slots.token = token;
    return this.#contentInfo(signer.scheme, timeLength, slots.signature.length, token.length).fill(slots);
  }
}

/**
 * Prepared writers by credential content, so a caller that rebuilds its credential object per seal
 * still reuses the prepared parts. A pure memo of (certificate, chain, hash): bounded, oldest
 * dropped first.
 */
const writers = new Map<string, SealCmsWriter>();
const MAX_WRITERS = 256;
/**
 * The same writers by the certificate's array object, with the chain's arrays they were made for:
 * the registry passes the store's shared certificate record (Table.getShared), whose arrays stay
 * the same objects, and never modified, while the record is unchanged; this spares hashing the
 * certificate and chain on every seal.
 */
const writersByCertificate = new WeakMap<Uint8Array, Array<{ chain: readonly Uint8Array[]; writer: SealCmsWriter }>>();

export function sealCmsWriter(credential: Pick<SealCredential, 'certificate' | 'chain'>, hash: HashName): SealCmsWriter {
  const known = writersByCertificate.get(credential.certificate);
  const same = known?.find((k) => k.writer.hash === hash && k.chain.length === credential.chain.length && k.chain.every((c, i) => c === credential.chain[i]));
  if (same) return same.writer;
  const h = createHash('sha256').update(hash);
  for (const c of [credential.certificate, ...credential.chain]) h.update(String(c.length)).update(c);
  const key = h.digest('hex');
  let writer = writers.get(key);
  if (!writer) {
    writer = new SealCmsWriter(credential, hash);
    if (writers.size >= MAX_WRITERS) writers.delete(writers.keys().next().value!);
    writers.set(key, writer);
  }
  const entry = { chain: [...credential.chain], writer };
  // A few per certificate (its hashes, a renewed CA chain); a caller that copies the chain each time does not pile them up.
  if (!known) writersByCertificate.set(credential.certificate, [entry]);
  else if (known.push(entry) > 4) known.shift();
  return writer;
}

/**
 * Builds, signs and time-stamps a detached SignedData (ContentInfo DER). One HSM signature, one
 * time-stamp request. It never throws, it rejects.
 */
export function buildSignedData(input: SignedDataInput): Promise<Uint8Array> {
  try {
    return sealCmsWriter(input, input.hash).write(input);
  } catch (e) {
    return Promise.reject(e);
  }
}
