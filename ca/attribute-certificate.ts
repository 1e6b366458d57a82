/**
 * Encoding and signing attribute certificates (RFC 5755). pkijs can parse AttributeCertificateV2
 * but not sign it, so acinfo is built here with asn1js, signed through the Signer (the HSM), and
 * the signature placed in the outer SEQUENCE:
 *
 *   AttributeCertificate ::= SEQUENCE { acinfo AttributeCertificateInfo, signatureAlgorithm, signatureValue BIT STRING }
 *   AttributeCertificateInfo ::= SEQUENCE {
 *     version v2(1), holder Holder, issuer AttCertIssuer, signature AlgorithmIdentifier,
 *     serialNumber INTEGER, attrCertValidityPeriod SEQUENCE { GeneralizedTime, GeneralizedTime },
 *     attributes SEQUENCE OF Attribute, extensions Extensions OPTIONAL }
 *   Holder       ::= SEQUENCE { baseCertificateID [0] IssuerSerial }          (s4.2.2: the holder's PKC)
 *   IssuerSerial ::= SEQUENCE { issuer GeneralNames, serial CertificateSerialNumber }
 *   AttCertIssuer: v2Form [0] V2Form { issuerName GeneralNames }  -- exactly one directoryName (s4.2.3)
 *
 * Attributes (s4.4): role (id-at-role, RoleSyntax with roleName a URI, s4.4.5), clearance
 * (id-at-clearance 2.5.4.55, s4.4.6), group (id-aca-group, IetfAttrSyntax, s4.4.4) for the
 * department, and title (id-at-title) for the position. Extensions (s4.3): authority key
 * identifier, CRL distribution point and AIA (OCSP) pointing at yinxin, or noRevAvail (s4.3.6)
 * when no revocation information is to be offered (then neither pointer is present).
 */
import * as asn1js from 'asn1js';
import { signatureAlgorithmDer } from '../hsm/algorithms.ts';
import type { SignatureScheme, Signer } from '../hsm/signer.ts';
import { YinxinError } from '../common/errors.ts';

export const AC_OID = {
  role: '2.5.4.72',
  clearance: '2.5.4.55',
  title: '2.5.4.12',
  group: '1.3.6.1.5.5.7.10.4',
  authorityKeyIdentifier: '2.5.29.35',
  cRLDistributionPoints: '2.5.29.31',
  authorityInfoAccess: '1.3.6.1.5.5.7.1.1',
  noRevAvail: '2.5.29.56',
  ocsp: '1.3.6.1.5.5.7.48.1',
} as const;

/** ClassList named bits (RFC 5755 s4.4.6). */
export const clearanceLevels = { unmarked: 0, unclassified: 1, restricted: 2, confidential: 3, secret: 4, topSecret: 5 } as const;
export type ClearanceLevel = keyof typeof clearanceLevels;

export interface AttributeCertificateContent {
  /** Positive INTEGER content octets. */
  serial: Uint8Array;
  /** The holder's public-key certificate: its issuer's DER Name and its serial's content octets. */
  holder: { issuerNameDer: Uint8Array; serial: Uint8Array };
  /** DER Name of the attribute authority (its certificate's subject). */
  issuerNameDer: Uint8Array;
  notBefore: Date;
  notAfter: Date;
  roles: string[];
  clearance?: { policyId: string; level: ClearanceLevel };
  position?: string;
  department?: string;
  authorityKeyIdentifier: Uint8Array;
  /** Revocation pointers; omitted when noRevAvail. */
  urls?: { crl: string; ocsp: string };
  noRevAvail?: boolean;
}

const der = (block: asn1js.BaseBlock) => new Uint8Array(block.toBER(false));

/** Pre-encoded DER placed as a child of an asn1js container (asn1js' RawData ignores its parent's writer). */
class Encoded extends asn1js.RawData {
  override toBER(sizeOnly?: boolean, writer?: { write(buf: ArrayBuffer | Uint8Array): void }): ArrayBuffer {
    const bytes = super.toBER(sizeOnly);
    if (writer) {
      writer.write(bytes);
      return new ArrayBuffer(0);
    }
    return bytes;
  }
}
const raw = (bytes: Uint8Array) => new Encoded({ data: bytes }) as unknown as asn1js.BaseBlock;
const ctx = (tagNumber: number, value: asn1js.BaseBlock[]) => new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber }, value });
const ctxPrimitive = (tagNumber: number, valueHex: Uint8Array) => new asn1js.Primitive({ idBlock: { tagClass: 3, tagNumber }, valueHex });
const ascii = (s: string) => new Uint8Array(Buffer.from(s, 'ascii'));

/** GeneralNames holding one directoryName [4] (EXPLICIT: Name is a CHOICE). */
function directoryNames(nameDer: Uint8Array): asn1js.Sequence {
  return new asn1js.Sequence({ value: [ctx(4, [raw(nameDer)])] });
}

function generalizedTime(d: Date): asn1js.GeneralizedTime {
  // s4.2.6: GeneralizedTime without fractional seconds.
  return new asn1js.GeneralizedTime({ valueDate: new Date(Math.floor(d.getTime() / 1000) * 1000) });
}

function attribute(type: string, values: asn1js.BaseBlock[]): asn1js.Sequence {
  return new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: type }), new asn1js.Set({ value: values })] });
}

function extension(oid: string, critical: boolean, value: asn1js.BaseBlock): asn1js.Sequence {
  const parts: asn1js.BaseBlock[] = [new asn1js.ObjectIdentifier({ value: oid })];
  if (critical) parts.push(new asn1js.Boolean({ value: true }));
  parts.push(new asn1js.OctetString({ valueHex: der(value) }));
  return new asn1js.Sequence({ value: parts });
}

/** The URI naming a role (RFC 5755 s4.4.5: roleName MUST be a uniformResourceIdentifier). */
export function roleUri(role: string): string {
  return `urn:yinxin:role:${encodeURIComponent(role)}`;
}

/** ClassList with one named bit set, DER (trailing zero bits removed, X.690 s11.2.2). */
function classList(level: ClearanceLevel): asn1js.BitString {
  const bit = clearanceLevels[level];
  return new asn1js.BitString({ valueHex: new Uint8Array([0x80 >> bit]), unusedBits: 7 - bit });
}

/** DER AttributeCertificateInfo. */
export function encodeAcInfo(content: AttributeCertificateContent, scheme: SignatureScheme): Uint8Array {
  if (content.roles.length === 0 && !content.clearance && !content.position && !content.department) {
    throw new YinxinError('validation-failed', 'an attribute certificate must carry at least one attribute (s4.2.7)', { field: 'roles' });
  }
  const attributes: asn1js.BaseBlock[] = [];
  if (content.roles.length) {
    attributes.push(attribute(AC_OID.role, content.roles.map((role) =>
      // RoleSyntax ::= SEQUENCE { roleAuthority [0] GeneralNames OPTIONAL, roleName [1] GeneralName }
      new asn1js.Sequence({ value: [ctx(1, [ctxPrimitive(6, ascii(roleUri(role)))])] }))));
  }
  if (content.clearance) {
    const fields: asn1js.BaseBlock[] = [new asn1js.ObjectIdentifier({ value: content.clearance.policyId })];
    // classList DEFAULT {unclassified}: a DER encoder omits the default value (X.690 s11.5).
    if (content.clearance.level !== 'unclassified') fields.push(classList(content.clearance.level));
    attributes.push(attribute(AC_OID.clearance, [new asn1js.Sequence({ value: fields })]));
  }
  if (content.position) attributes.push(attribute(AC_OID.title, [new asn1js.Utf8String({ value: content.position })]));
  if (content.department) {
    // IetfAttrSyntax ::= SEQUENCE { policyAuthority [0] GeneralNames OPTIONAL, values SEQUENCE OF CHOICE { ..., string UTF8String } }
    attributes.push(attribute(AC_OID.group, [new asn1js.Sequence({ value: [new asn1js.Sequence({ value: [new asn1js.Utf8String({ value: content.department })] })] })]));
  }

  const extensions: asn1js.BaseBlock[] = [
    extension(AC_OID.authorityKeyIdentifier, false, new asn1js.Sequence({ value: [ctxPrimitive(0, content.authorityKeyIdentifier)] })),
  ];
  if (content.noRevAvail) {
    extensions.push(extension(AC_OID.noRevAvail, false, new asn1js.Null()));
  } else if (content.urls) {
    extensions.push(extension(AC_OID.cRLDistributionPoints, false, new asn1js.Sequence({
      value: [new asn1js.Sequence({ value: [ctx(0, [ctx(0, [ctxPrimitive(6, ascii(content.urls.crl))])])] })],
    })));
    extensions.push(extension(AC_OID.authorityInfoAccess, false, new asn1js.Sequence({
      value: [new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: AC_OID.ocsp }), ctxPrimitive(6, ascii(content.urls.ocsp))] })],
    })));
  }

  return der(new asn1js.Sequence({
    value: [
      new asn1js.Integer({ value: 1 }), // v2
      // Holder: baseCertificateID [0] IMPLICIT IssuerSerial
      new asn1js.Sequence({ value: [ctx(0, [directoryNames(content.holder.issuerNameDer), new asn1js.Integer({ valueHex: content.holder.serial })])] }),
      // AttCertIssuer: v2Form [0] IMPLICIT V2Form { issuerName GeneralNames }
      ctx(0, [directoryNames(content.issuerNameDer)]),
      raw(signatureAlgorithmDer(scheme)),
      new asn1js.Integer({ valueHex: content.serial }),
      new asn1js.Sequence({ value: [generalizedTime(content.notBefore), generalizedTime(content.notAfter)] }),
      new asn1js.Sequence({ value: attributes }),
      new asn1js.Sequence({ value: extensions }),
    ],
  }));
}

/** Encodes acinfo, signs it (one HSM call) and returns the DER AttributeCertificate. */
export async function signAttributeCertificate(content: AttributeCertificateContent, signer: Signer, scheme: SignatureScheme = signer.scheme): Promise<Uint8Array> {
  const acinfo = encodeAcInfo(content, scheme);
  const signature = await signer.sign(acinfo, scheme);
  return der(new asn1js.Sequence({
    value: [raw(acinfo), raw(signatureAlgorithmDer(scheme)), new asn1js.BitString({ valueHex: signature, unusedBits: 0 })],
  }));
}
