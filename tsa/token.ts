/**
 * Writing time-stamp tokens (RFC 3161 s2.4.2, RFC 5816, RFC 5652). Everything that is the same in
 * every token (the certificates, the SignerInfo's sid and algorithms, the content-type and
 * signing-certificate-v2 attributes, the policy, the accuracy, the TSA name) is encoded once with
 * asn1js/pkijs when the authority starts; per request only the variable fields (imprint, serial,
 * genTime, nonce, message digest, signature) are encoded, still with asn1js, and written into a
 * DerTemplate (asn1.ts): the structure asn1js encoded once for that shape (every length the same),
 * so no object tree is built or walked per token. A naive pkijs object graph per token costs ~5x
 * more CPU; an asn1js tree of pre-encoded pieces ~4x (token.test.ts proves the bytes identical).
 */
import { TurnBatchingSigner } from '../hsm/turn-batch.ts';
import { createHash } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { YinxinError } from '../common/errors.ts';
import { toArrayBuffer } from '../common/pem.ts';
import { digestAlgorithm, hashOfScheme, signatureAlgorithmDer } from '../hsm/algorithms.ts';
import type { HashName, SignatureScheme, Signer } from '../hsm/signer.ts';
import { compareDer, contextOf, DER_TAG, DerTemplate, encode, primitiveTlv, sequenceOf, setOf, TSA_OID, type TemplatePart } from './asn1.ts';
import { PKIStatus } from './failure.ts';
import { TSA_HASHES, type TsaHashInfo } from './request.ts';

/** RFC 3161 s2.4.2 Accuracy; every field optional, millis and micros 1..999. */
export interface Accuracy {
  seconds?: number;
  millis?: number;
  micros?: number;
}

export interface TokenFields {
  policy: string;
  hash: TsaHashInfo;
  hashParamsNull: boolean;
  hashedMessage: Uint8Array;
  /** Two's-complement octets, positive. */
  serial: Uint8Array;
  genTime: Date;
  nonce: Uint8Array | undefined;
  certReq: boolean;
}

export interface TokenWriterOptions {
  signer: Signer;
  certificate: Uint8Array;
  /** Put the TSA certificate's subject in TSTInfo.tsa (s2.4.2: a hint to identify the TSA). */
  includeTsaName: boolean;
  accuracy: Accuracy | undefined;
}

const nodeHashName: Record<HashName, string> = { 'SHA-256': 'sha256', 'SHA-384': 'sha384', 'SHA-512': 'sha512' };

function accuracySchema(accuracy: Accuracy): asn1js.Sequence {
  const value: asn1js.BaseBlock[] = [];
  const check = (n: number | undefined, name: string, max: number) => {
    if (n !== undefined && (!Number.isInteger(n) || n < (name === 'seconds' ? 0 : 1) || n > max)) {
      throw new YinxinError('config-invalid', `accuracy.${name} must be an integer in range, not ${n}`);
    }
  };
  check(accuracy.seconds, 'seconds', 2 ** 31 - 1);
  check(accuracy.millis, 'millis', 999);
  check(accuracy.micros, 'micros', 999);
  if (accuracy.seconds !== undefined) value.push(new asn1js.Integer({ value: accuracy.seconds }));
  if (accuracy.millis !== undefined) value.push(new asn1js.Integer({ idBlock: { tagClass: 3, tagNumber: 0 }, value: accuracy.millis }));
  if (accuracy.micros !== undefined) value.push(new asn1js.Integer({ idBlock: { tagClass: 3, tagNumber: 1 }, value: accuracy.micros }));
  return new asn1js.Sequence({ value });
}

/** Attribute ::= SEQUENCE { attrType, attrValues SET OF AttributeValue } (RFC 5652 s5.3) */
function attribute(type: string, value: asn1js.BaseBlock): asn1js.Sequence {
  return new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: type }), new asn1js.Set({ value: [value] })] });
}

/**
 * signing-certificate-v2 (RFC 5035 s3, required by RFC 5816 s2.2.1 when SHA-1 is not used):
 *   SigningCertificateV2 ::= SEQUENCE { certs SEQUENCE OF ESSCertIDv2, policies ... OPTIONAL }
 *   ESSCertIDv2 ::= SEQUENCE { hashAlgorithm DEFAULT sha256, certHash OCTET STRING, issuerSerial IssuerSerial OPTIONAL }
 *   IssuerSerial ::= SEQUENCE { issuer GeneralNames, serialNumber CertificateSerialNumber }
 * The issuer is GeneralNames (a SEQUENCE OF GeneralName holding a directoryName), not a bare Name:
 * writing the Name directly is the classic interop bug openssl rejects. pkijs has no class for it.
 */
export function signingCertificateV2(certificateDer: Uint8Array, certificate: pkijs.Certificate): asn1js.Sequence {
  const certHash = createHash('sha256').update(certificateDer).digest();
  const issuer = new asn1js.Sequence({
    value: [new pkijs.GeneralName({ type: 4, value: certificate.issuer }).toSchema() as asn1js.BaseBlock],
  });
  const issuerSerial = new asn1js.Sequence({ value: [issuer, certificate.serialNumber] });
  // hashAlgorithm is absent: SHA-256 is the DEFAULT, and DER omits defaults.
  const essCertIdV2 = new asn1js.Sequence({ value: [new asn1js.OctetString({ valueHex: certHash }), issuerSerial] });
  return new asn1js.Sequence({ value: [new asn1js.Sequence({ value: [essCertIdV2] })] });
}

function hasCriticalTimeStampingOnly(certificate: pkijs.Certificate): boolean {
  const eku = certificate.extensions?.find((e) => e.extnID === TSA_OID.extKeyUsage);
  if (!eku || !eku.critical) return false;
  const purposes = (eku.parsedValue as pkijs.ExtKeyUsage | undefined)?.keyPurposes ?? [];
  return purposes.length === 1 && purposes[0] === TSA_OID.timeStamping;
}

/** Templates per shape are cached; shapes vary with nonce length, genTime precision, imprint and policy. */
const MAX_TEMPLATES = 512;

export class TokenWriter {
  /** Signs per event-loop turn in one batch, so the key store spreads them over its threads. */
  readonly #signer: TurnBatchingSigner;
  readonly #scheme: SignatureScheme;
  readonly #digest: string;
  /** Pre-encoded pieces (DER), see the file comment. */
  readonly #policyOid = new Map<string, Uint8Array>();
  readonly #hashAlgorithm = new Map<string, Uint8Array>();
  readonly #accuracy: Uint8Array | undefined;
  readonly #tsaName: Uint8Array | undefined;
  readonly #contentTypeAttr: Uint8Array;
  readonly #signingCertAttr: Uint8Array;
  readonly #signerInfoHead: Uint8Array;
  readonly #signatureAlgorithm: Uint8Array;
  readonly #signedDataHead: Uint8Array;
  readonly #certificates: Uint8Array;
  readonly #version1: Uint8Array;
  readonly #signedDataOid: Uint8Array;
  readonly #grantedStatus: Uint8Array;
  readonly #tstInfoOid: Uint8Array;
  /** The messageDigest attribute (RFC 5652 s11.2) with its OCTET STRING as a slot. */
  readonly #digestAttr: DerTemplate;
  /** SET OF the signed attributes in DER order, the messageDigest attribute as a slot: what is signed (s5.4). */
  readonly #signedAttrs: DerTemplate;
  readonly #signedAttrParts: (digest: TemplatePart) => TemplatePart[];
  readonly #tstInfoTemplates = new Map<string, DerTemplate>();
  readonly #responseTemplates = new Map<string, DerTemplate>();
  /** The last genTime encoded: under load, many tokens share one (whole seconds by default). */
  #lastGenTime: { ms: number; der: Uint8Array } = { ms: NaN, der: new Uint8Array(0) };
  /** Subject of the TSA certificate, for logs and /healthz. */
  readonly subject: string;
  readonly notAfter: Date;

  constructor(options: TokenWriterOptions) {
    const { signer, certificate: certificateDer } = options;
    let certificate: pkijs.Certificate;
    try {
      certificate = pkijs.Certificate.fromBER(toArrayBuffer(certificateDer));
    } catch (e) {
      throw new YinxinError('config-invalid', 'the TSA certificate is not a DER X.509 certificate', undefined, { cause: e });
    }
    // RFC 3161 s2.3: the TSA certificate MUST carry one critical extendedKeyUsage, id-kp-timeStamping only.
    if (!hasCriticalTimeStampingOnly(certificate)) {
      throw new YinxinError('config-invalid', 'the TSA certificate must have a critical extendedKeyUsage with timeStamping only (RFC 3161 s2.3)');
    }
    const certKey = encode(certificate.subjectPublicKeyInfo.toSchema());
    if (Buffer.compare(Buffer.from(certKey), Buffer.from(signer.publicKeyInfo)) !== 0) {
      throw new YinxinError('config-invalid', `the TSA certificate does not certify the public key of HSM key "${signer.label}"`);
    }
    this.subject = certificate.subject.typesAndValues.map((tv) => `${tv.type}=${tv.value.valueBlock.value}`).join(',');
    this.notAfter = certificate.notAfter.value;

    this.#scheme = signer.scheme;
    this.#signer = new TurnBatchingSigner(signer, this.#scheme);
    // Ed25519 signs the attributes whole; RFC 8419 s3 pairs it with SHA-512 for the message digest.
    const digestHash: HashName = hashOfScheme(this.#scheme) ?? 'SHA-512';
    this.#digest = nodeHashName[digestHash];
    const digestAlgorithmDer = encode(digestAlgorithm(digestHash).toSchema());

    this.#accuracy = options.accuracy && Object.keys(options.accuracy).length ? encode(accuracySchema(options.accuracy)) : undefined;
    // tsa [0] EXPLICIT GeneralName (directoryName [4])
    this.#tsaName = options.includeTsaName
      ? encode(new asn1js.Constructed({
        idBlock: { tagClass: 3, tagNumber: 0 },
        value: [new pkijs.GeneralName({ type: 4, value: certificate.subject }).toSchema() as asn1js.BaseBlock],
      }))
      : undefined;

    this.#contentTypeAttr = encode(attribute(TSA_OID.contentType, new asn1js.ObjectIdentifier({ value: TSA_OID.tstInfo })));
    this.#signingCertAttr = encode(attribute(TSA_OID.signingCertificateV2, signingCertificateV2(certificateDer, certificate)));
    const digestLength = createHash(this.#digest).digest().length;
    const digestTlvLength = encode(new asn1js.OctetString({ valueHex: new Uint8Array(digestLength) })).length;
    this.#digestAttr = new DerTemplate(sequenceOf(
      { fixed: encode(new asn1js.ObjectIdentifier({ value: TSA_OID.messageDigest })) },
      setOf({ slot: 'digest', length: digestTlvLength }),
    ));
    const placeholderDigest = this.#digestAttr.bytes;
    // X.690 s11.6: a DER SET OF sorts its elements; only the digest's value varies, not its place.
    const digestFirst = compareDer(placeholderDigest, this.#signingCertAttr) < 0;
    if (compareDer(this.#contentTypeAttr, placeholderDigest) > 0 || compareDer(this.#contentTypeAttr, this.#signingCertAttr) > 0) {
      throw new YinxinError('internal', 'unexpected DER order of the signed attributes');
    }
    const contentType: TemplatePart = { fixed: this.#contentTypeAttr };
    const signingCert: TemplatePart = { fixed: this.#signingCertAttr };
    this.#signedAttrParts = (digest) => (digestFirst ? [contentType, digest, signingCert] : [contentType, signingCert, digest]);
    this.#signedAttrs = new DerTemplate(setOf(...this.#signedAttrParts({ slot: 'digestAttr', length: placeholderDigest.length })));
    this.#tstInfoOid = encode(new asn1js.ObjectIdentifier({ value: TSA_OID.tstInfo }));

    // SignerInfo: version 1 (sid is issuerAndSerialNumber, RFC 5652 s5.3), sid, digestAlgorithm.
    const sid = new pkijs.IssuerAndSerialNumber({ issuer: certificate.issuer, serialNumber: certificate.serialNumber });
    this.#signerInfoHead = Buffer.concat([
      encode(new asn1js.Integer({ value: 1 })),
      encode(sid.toSchema()),
      digestAlgorithmDer,
    ]);
    this.#signatureAlgorithm = signatureAlgorithmDer(this.#scheme);
    // SignedData: version 3 (eContentType is not id-data, RFC 5652 s5.1), digestAlgorithms.
    this.#signedDataHead = Buffer.concat([
      encode(new asn1js.Integer({ value: 3 })),
      encode(new asn1js.Set({ value: [asn1js.fromBER(digestAlgorithmDer).result as asn1js.BaseBlock] })),
    ]);
    // certificates [0] IMPLICIT CertificateSet: the TSA certificate, sent when certReq is true (s2.4.1).
    this.#certificates = encode(new asn1js.Constructed({
      idBlock: { tagClass: 3, tagNumber: 0 },
      value: [asn1js.fromBER(certificateDer).result as asn1js.BaseBlock],
    }));
    this.#version1 = encode(new asn1js.Integer({ value: 1 }));
    this.#signedDataOid = encode(new asn1js.ObjectIdentifier({ value: TSA_OID.signedData }));
    this.#grantedStatus = encode(new asn1js.Sequence({ value: [new asn1js.Integer({ value: PKIStatus.granted })] }));
    for (const hash of Object.values(TSA_HASHES)) {
      for (const withNull of [false, true]) {
        const alg = new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: hash.oid }), ...(withNull ? [new asn1js.Null()] : [])] });
        this.#hashAlgorithm.set(`${hash.oid}/${withNull}`, encode(alg));
      }
    }
  }

  #policy(oid: string): Uint8Array {
    let der = this.#policyOid.get(oid);
    if (!der) {
      der = encode(new asn1js.ObjectIdentifier({ value: oid }));
      this.#policyOid.set(oid, der);
    }
    return der;
  }

  #genTime(date: Date): Uint8Array {
    const ms = date.getTime();
    if (this.#lastGenTime.ms !== ms) this.#lastGenTime = { ms, der: encode(new asn1js.GeneralizedTime({ valueDate: date })) };
    return this.#lastGenTime.der;
  }

  /** TSTInfo (RFC 3161 s2.4.2) DER. ordering is FALSE, its DEFAULT, hence absent. */
  tstInfo(f: TokenFields): Uint8Array {
    const imprint = primitiveTlv(DER_TAG.octetString, f.hashedMessage);
    const serial = primitiveTlv(DER_TAG.integer, f.serial);
    const genTime = this.#genTime(f.genTime);
    const nonce = f.nonce ? primitiveTlv(DER_TAG.integer, f.nonce) : undefined;
    const hashAlgorithm = `${f.hash.oid}/${f.hashParamsNull}`;
    const key = `${f.policy} ${hashAlgorithm} ${imprint.length} ${serial.length} ${genTime.length} ${nonce?.length ?? 0}`;
    let template = this.#tstInfoTemplates.get(key);
    if (!template) {
      const parts: TemplatePart[] = [
        { fixed: this.#version1 },
        { fixed: this.#policy(f.policy) },
        sequenceOf({ fixed: this.#hashAlgorithm.get(hashAlgorithm)! }, { slot: 'imprint', length: imprint.length }),
        { slot: 'serial', length: serial.length },
        { slot: 'genTime', length: genTime.length },
      ];
      if (this.#accuracy) parts.push({ fixed: this.#accuracy });
      if (nonce) parts.push({ slot: 'nonce', length: nonce.length });
      if (this.#tsaName) parts.push({ fixed: this.#tsaName });
      template = remember(this.#tstInfoTemplates, key, new DerTemplate(sequenceOf(...parts)));
    }
    return template.fill(nonce ? { imprint, serial, genTime, nonce } : { imprint, serial, genTime });
  }

  /** The whole TimeStampResp DER: status granted and the token (a CMS SignedData over the TSTInfo). */
  async response(f: TokenFields): Promise<Uint8Array> {
    const tstInfo = this.tstInfo(f);
    const messageDigest = createHash(this.#digest).update(tstInfo).digest();
    const digestAttr = this.#digestAttr.fill({ digest: primitiveTlv(DER_TAG.octetString, messageDigest) });
    // RFC 5652 s5.4: the signature covers the DER of the attributes with an explicit SET OF tag;
    // the SignerInfo carries the same content under [0] IMPLICIT.
    const toBeSigned = this.#signedAttrs.fill({ digestAttr });
    const signature = await this.#signer.sign(toBeSigned);

    const eContent = primitiveTlv(DER_TAG.octetString, tstInfo);
    const signatureValue = primitiveTlv(DER_TAG.octetString, signature);
    const key = `${f.certReq} ${eContent.length} ${signatureValue.length}`;
    let template = this.#responseTemplates.get(key);
    if (!template) {
      const signerInfo = sequenceOf(
        { fixed: this.#signerInfoHead },
        contextOf(0, ...this.#signedAttrParts({ slot: 'digestAttr', length: digestAttr.length })),
        { fixed: this.#signatureAlgorithm },
        { slot: 'signature', length: signatureValue.length },
      );
      const signedData = sequenceOf(
        { fixed: this.#signedDataHead },
        sequenceOf({ fixed: this.#tstInfoOid }, contextOf(0, { slot: 'eContent', length: eContent.length })),
        ...(f.certReq ? [{ fixed: this.#certificates }] : []),
        setOf(signerInfo),
      );
      const token = sequenceOf({ fixed: this.#signedDataOid }, contextOf(0, signedData));
      template = remember(this.#responseTemplates, key, new DerTemplate(sequenceOf({ fixed: this.#grantedStatus }, token)));
    }
    return template.fill({ digestAttr, eContent, signature: signatureValue });
  }
}

function remember(cache: Map<string, DerTemplate>, key: string, template: DerTemplate): DerTemplate {
  if (cache.size >= MAX_TEMPLATES) cache.clear();
  cache.set(key, template);
  return template;
}
