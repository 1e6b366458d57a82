/**
 * The previous token writer, kept as the reference the fast writer (tsa/token.ts) must match byte
 * for byte: every response is one asn1js object tree (fixed pieces pre-encoded) encoded per
 * request. Its output is the one the openssl tests verified before the template writer existed.
 */
import { createHash } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { YinxinError } from '../../common/errors.ts';
import { toArrayBuffer } from '../../common/pem.ts';
import { digestAlgorithm, hashOfScheme, signatureAlgorithmDer } from '../../hsm/algorithms.ts';
import type { HashName, SignatureScheme, Signer } from '../../hsm/signer.ts';
import { compareDer, encode, preencoded, TSA_OID } from '../asn1.ts';
import { PKIStatus } from '../failure.ts';
import { TSA_HASHES } from '../request.ts';
import type { Accuracy, TokenFields, TokenWriterOptions } from '../token.ts';

/** An asn1js Integer carrying exactly these two's-complement octets. */
const integerOf = (octets: Uint8Array) => new asn1js.Integer({ valueHex: octets });

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
function signingCertificateV2(certificateDer: Uint8Array, certificate: pkijs.Certificate): asn1js.Sequence {
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

export class ReferenceTokenWriter {
  readonly #signer: Signer;
  readonly #scheme: SignatureScheme;
  readonly #digest: string;
  /** Pre-encoded pieces, see the class comment. */
  readonly #policyOid = new Map<string, asn1js.BaseBlock>();
  readonly #hashAlgorithm = new Map<string, asn1js.BaseBlock>();
  readonly #accuracy: asn1js.BaseBlock | undefined;
  readonly #tsaName: asn1js.BaseBlock | undefined;
  readonly #contentTypeAttr: Uint8Array;
  readonly #signingCertAttr: Uint8Array;
  /** true when the messageDigest attribute sorts before signing-certificate-v2 in the DER SET. */
  readonly #digestFirst: boolean;
  readonly #signerInfoHead: asn1js.BaseBlock;
  readonly #signatureAlgorithm: asn1js.BaseBlock;
  readonly #signedDataHead: asn1js.BaseBlock;
  readonly #certificates: asn1js.BaseBlock;
  readonly #version1: asn1js.BaseBlock;
  readonly #signedDataOid: asn1js.BaseBlock;
  readonly #grantedStatus: asn1js.BaseBlock;
  readonly #messageDigestOid: asn1js.BaseBlock;
  readonly #tstInfoOid: asn1js.BaseBlock;
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

    this.#signer = signer;
    this.#scheme = signer.scheme;
    // Ed25519 signs the attributes whole; RFC 8419 s3 pairs it with SHA-512 for the message digest.
    const digestHash: HashName = hashOfScheme(this.#scheme) ?? 'SHA-512';
    this.#digest = nodeHashName[digestHash];
    const digestAlgorithmDer = encode(digestAlgorithm(digestHash).toSchema());

    this.#accuracy = options.accuracy && Object.keys(options.accuracy).length ? preencoded(encode(accuracySchema(options.accuracy))) : undefined;
    // tsa [0] EXPLICIT GeneralName (directoryName [4])
    this.#tsaName = options.includeTsaName
      ? preencoded(encode(new asn1js.Constructed({
        idBlock: { tagClass: 3, tagNumber: 0 },
        value: [new pkijs.GeneralName({ type: 4, value: certificate.subject }).toSchema() as asn1js.BaseBlock],
      })))
      : undefined;

    this.#contentTypeAttr = encode(attribute(TSA_OID.contentType, new asn1js.ObjectIdentifier({ value: TSA_OID.tstInfo })));
    this.#signingCertAttr = encode(attribute(TSA_OID.signingCertificateV2, signingCertificateV2(certificateDer, certificate)));
    const placeholderDigest = encode(attribute(TSA_OID.messageDigest, new asn1js.OctetString({ valueHex: new Uint8Array(createHash(this.#digest).digest().length) })));
    this.#digestFirst = compareDer(placeholderDigest, this.#signingCertAttr) < 0;
    if (compareDer(this.#contentTypeAttr, placeholderDigest) > 0 || compareDer(this.#contentTypeAttr, this.#signingCertAttr) > 0) {
      throw new YinxinError('internal', 'unexpected DER order of the signed attributes');
    }
    this.#tstInfoOid = preencoded(encode(new asn1js.ObjectIdentifier({ value: TSA_OID.tstInfo })));
    this.#messageDigestOid = preencoded(encode(new asn1js.ObjectIdentifier({ value: TSA_OID.messageDigest })));

    // SignerInfo: version 1 (sid is issuerAndSerialNumber, RFC 5652 s5.3), sid, digestAlgorithm.
    const sid = new pkijs.IssuerAndSerialNumber({ issuer: certificate.issuer, serialNumber: certificate.serialNumber });
    this.#signerInfoHead = preencoded(Buffer.concat([
      encode(new asn1js.Integer({ value: 1 })),
      encode(sid.toSchema()),
      digestAlgorithmDer,
    ]));
    this.#signatureAlgorithm = preencoded(signatureAlgorithmDer(this.#scheme));
    // SignedData: version 3 (eContentType is not id-data, RFC 5652 s5.1), digestAlgorithms, encapContentInfo's type.
    this.#signedDataHead = preencoded(Buffer.concat([
      encode(new asn1js.Integer({ value: 3 })),
      encode(new asn1js.Set({ value: [asn1js.fromBER(digestAlgorithmDer).result as asn1js.BaseBlock] })),
    ]));
    // certificates [0] IMPLICIT CertificateSet: the TSA certificate, sent when certReq is true (s2.4.1).
    this.#certificates = preencoded(encode(new asn1js.Constructed({
      idBlock: { tagClass: 3, tagNumber: 0 },
      value: [asn1js.fromBER(certificateDer).result as asn1js.BaseBlock],
    })));
    this.#version1 = preencoded(encode(new asn1js.Integer({ value: 1 })));
    this.#signedDataOid = preencoded(encode(new asn1js.ObjectIdentifier({ value: TSA_OID.signedData })));
    this.#grantedStatus = preencoded(encode(new asn1js.Sequence({ value: [new asn1js.Integer({ value: PKIStatus.granted })] })));
    for (const hash of Object.values(TSA_HASHES)) {
      for (const withNull of [false, true]) {
        const alg = new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: hash.oid }), ...(withNull ? [new asn1js.Null()] : [])] });
        this.#hashAlgorithm.set(`${hash.oid}/${withNull}`, preencoded(encode(alg)));
      }
    }
  }

  #policy(oid: string): asn1js.BaseBlock {
    let block = this.#policyOid.get(oid);
    if (!block) {
      block = preencoded(encode(new asn1js.ObjectIdentifier({ value: oid })));
      this.#policyOid.set(oid, block);
    }
    return block;
  }

  /** TSTInfo (RFC 3161 s2.4.2) DER. ordering is FALSE, its DEFAULT, hence absent. */
  tstInfo(f: TokenFields): Uint8Array {
    const value: asn1js.BaseBlock[] = [
      this.#version1,
      this.#policy(f.policy),
      new asn1js.Sequence({
        value: [this.#hashAlgorithm.get(`${f.hash.oid}/${f.hashParamsNull}`)!, new asn1js.OctetString({ valueHex: f.hashedMessage })],
      }),
      integerOf(f.serial),
      new asn1js.GeneralizedTime({ valueDate: f.genTime }),
    ];
    if (this.#accuracy) value.push(this.#accuracy);
    if (f.nonce) value.push(integerOf(f.nonce));
    if (this.#tsaName) value.push(this.#tsaName);
    return encode(new asn1js.Sequence({ value }));
  }

  /** The whole TimeStampResp DER: status granted and the token (a CMS SignedData over the TSTInfo). */
  async response(f: TokenFields): Promise<Uint8Array> {
    const tstInfo = this.tstInfo(f);
    const messageDigest = createHash(this.#digest).update(tstInfo).digest();
    const digestAttr = new asn1js.Sequence({
      value: [this.#messageDigestOid, new asn1js.Set({ value: [new asn1js.OctetString({ valueHex: messageDigest })] })],
    });
    const contentType = preencoded(this.#contentTypeAttr);
    const signingCert = preencoded(this.#signingCertAttr);
    const attributes = this.#digestFirst ? [contentType, digestAttr, signingCert] : [contentType, signingCert, digestAttr];
    // RFC 5652 s5.4: the signature covers the DER of the attributes with an explicit SET OF tag;
    // the SignerInfo carries the same content under [0] IMPLICIT.
    const toBeSigned = encode(new asn1js.Set({ value: attributes }));
    const signature = await this.#signer.sign(toBeSigned, this.#scheme);

    const signerInfo = new asn1js.Sequence({
      value: [
        this.#signerInfoHead,
        new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber: 0 }, value: attributes }),
        this.#signatureAlgorithm,
        new asn1js.OctetString({ valueHex: signature }),
      ],
    });
    const signedData = new asn1js.Sequence({
      value: [
        this.#signedDataHead,
        new asn1js.Sequence({
          value: [
            this.#tstInfoOid,
            new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber: 0 }, value: [new asn1js.OctetString({ valueHex: tstInfo })] }),
          ],
        }),
        ...(f.certReq ? [this.#certificates] : []),
        new asn1js.Set({ value: [signerInfo] }),
      ],
    });
    const token = new asn1js.Sequence({
      value: [this.#signedDataOid, new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber: 0 }, value: [signedData] })],
    });
    return encode(new asn1js.Sequence({ value: [this.#grantedStatus, token] }));
  }
}

