/**
 * Building and signing X.509 v3 certificates (RFC 5280) fast.
 *
 * A CertificateTemplate is made once per (issuing CA, profile, key family). It encodes, with
 * asn1js, every part that is the same for all certificates of that kind (version, signature
 * algorithm, issuer name, and the fixed extensions: basic constraints, key usage, EKU, AKI,
 * policies, CRL distribution points, AIA, ocsp-nocheck). Per certificate only the variable parts
 * are encoded (serial, validity, subject, SPKI, SKI, SAN) and joined with the fixed ones as
 * asn1js RawData blocks: no DER is written by hand, and no pkijs object is built per certificate.
 */
import * as asn1js from 'asn1js';
import { isIPv4 } from 'node:net';
import { YinxinError } from '../common/errors.ts';
import { signatureAlgorithmDer } from '../hsm/algorithms.ts';
import type { SignatureScheme, Signer } from '../hsm/signer.ts';
import type { PublicKeyKind } from './keys.ts';
import { keyUsageBitPosition, type DistributionUrls, type KeyUsageBit, type SubjectAltNames } from './profiles.ts';

export const extensionOid = {
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  cRLDistributionPoints: '2.5.29.31',
  certificatePolicies: '2.5.29.32',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  authorityInfoAccess: '1.3.6.1.5.5.7.1.1',
  ocspNoCheck: '1.3.6.1.5.5.7.48.1.5',
} as const;

const accessMethod = { ocsp: '1.3.6.1.5.5.7.48.1', caIssuers: '1.3.6.1.5.5.7.48.2' } as const;

/** The issuer as a template needs it. For a self-signed certificate, the subject itself. */
export interface IssuerContext {
  /** DER Name of the issuer (its certificate's subject, byte for byte). */
  nameDer: Uint8Array;
  keyIdentifier: Uint8Array;
  signer: Signer;
  scheme: SignatureScheme;
}

export interface FixedExtensions {
  /** Absent: the extension is omitted. CA certificates always have it (critical). */
  basicConstraints?: { ca: boolean; pathLength?: number };
  keyUsage: KeyUsageBit[];
  extendedKeyUsage: { purposes: string[]; critical: boolean } | null;
  policies: string[];
  /** AIA (caIssuers + OCSP) and CRL distribution point; null for a root (nothing above it to point to). */
  urls: DistributionUrls | null;
  ocspNoCheck: boolean;
}

export interface VariableParts {
  /** Positive INTEGER content bytes, minimal (first byte 0x01..0x7f). */
  serial: Uint8Array;
  notBefore: Date;
  notAfter: Date;
  subjectDer: Uint8Array;
  /** DER SubjectPublicKeyInfo. */
  publicKeyInfo: Uint8Array;
  subjectKeyIdentifier: Uint8Array;
  san?: SubjectAltNames;
}

const der = (block: asn1js.BaseBlock) => new Uint8Array(block.toBER(false));
/**
 * Already-encoded DER, joined as is inside an asn1js container. asn1js' RawData returns its bytes
 * but ignores the writer a constructed block hands its children, so this one writes to it.
 */
export class EncodedDer extends asn1js.RawData {
  override toBER(sizeOnly?: boolean, writer?: { write(buf: ArrayBuffer | Uint8Array): void }): ArrayBuffer {
    if (writer) {
      // The writer copies what it is given: no need for RawData's own defensive copy first.
      writer.write(this.dataView);
      return new ArrayBuffer(0);
    }
    return super.toBER(sizeOnly);
  }
}

/** typed as a block because asn1js' container types do not list RawData. */
export const raw = (bytes: Uint8Array) => new EncodedDer({ data: bytes }) as unknown as asn1js.BaseBlock;
const contextPrimitive = (tagNumber: number, valueHex: Uint8Array) => new asn1js.Primitive({ idBlock: { tagClass: 3, tagNumber }, valueHex });
const contextConstructed = (tagNumber: number, value: asn1js.BaseBlock[]) => new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber }, value });
const ascii = (s: string) => new Uint8Array(Buffer.from(s, 'ascii'));

/** Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING } */
const oidCache = new Map<string, Uint8Array>();
/** An OBJECT IDENTIFIER, encoded by asn1js once per OID and reused. */
export function oidBlock(oid: string): asn1js.BaseBlock {
  let bytes = oidCache.get(oid);
  if (!bytes) {
    bytes = der(new asn1js.ObjectIdentifier({ value: oid }));
    oidCache.set(oid, bytes);
  }
  return raw(bytes);
}

function extension(oid: string, critical: boolean, value: asn1js.BaseBlock | Uint8Array): Uint8Array {
  const inner = value instanceof Uint8Array ? value : der(value);
  const parts: asn1js.BaseBlock[] = [oidBlock(oid)];
  // DER: a DEFAULT value is omitted (X.690 s11.5).
  if (critical) parts.push(new asn1js.Boolean({ value: true }));
  parts.push(new asn1js.OctetString({ valueHex: inner }));
  return der(new asn1js.Sequence({ value: parts }));
}

/** KeyUsage as a DER named-bit BIT STRING: trailing zero bits removed (X.690 s11.2.2). */
export function keyUsageBitString(bits: KeyUsageBit[]): asn1js.BitString {
  const positions = bits.map((b) => keyUsageBitPosition[b]);
  const highest = Math.max(...positions);
  const bytes = new Uint8Array(Math.floor(highest / 8) + 1);
  for (const p of positions) bytes[p >> 3] |= 0x80 >> (p & 7);
  const unusedBits = 7 - (highest & 7);
  return new asn1js.BitString({ valueHex: bytes, unusedBits });
}

/** Key usage as a profile states it, narrowed to what the key can do (RFC 5480 s3, RFC 8410 s5). */
export function keyUsageForKey(bits: KeyUsageBit[], kind: PublicKeyKind): KeyUsageBit[] {
  const out = bits.filter((b) =>
    b === 'keyEncipherment' || b === 'dataEncipherment' ? kind.type === 'rsa'
    : b === 'keyAgreement' ? kind.type === 'ec'
    : true);
  if (out.length === 0) throw new YinxinError('unsupported-algorithm', `a ${kind.type} key cannot serve this profile's key usage (${bits.join(', ')})`);
  return out;
}

function uri(u: string): asn1js.Primitive {
  return contextPrimitive(6, ascii(u));
}

function encodeFixedExtensions(fixed: FixedExtensions, issuer: IssuerContext): { head: Uint8Array; tail: Uint8Array; oids: string[] } {
  const head: Uint8Array[] = [];
  const tail: Uint8Array[] = [];
  const oids: string[] = [];
  const add = (list: Uint8Array[], oid: string, critical: boolean, value: asn1js.BaseBlock | Uint8Array) => {
    oids.push(oid);
    list.push(extension(oid, critical, value));
  };
  if (fixed.basicConstraints) {
    const bc = fixed.basicConstraints;
    const fields: asn1js.BaseBlock[] = [];
    if (bc.ca) fields.push(new asn1js.Boolean({ value: true }));
    if (bc.ca && bc.pathLength !== undefined) fields.push(new asn1js.Integer({ value: bc.pathLength }));
    // RFC 5280 s4.2.1.9: MUST be critical in CA certificates.
    add(head, extensionOid.basicConstraints, true, new asn1js.Sequence({ value: fields }));
  }
  // RFC 5280 s4.2.1.3: SHOULD be critical.
  add(head, extensionOid.keyUsage, true, keyUsageBitString(fixed.keyUsage));
  if (fixed.extendedKeyUsage) {
    add(head, extensionOid.extKeyUsage, fixed.extendedKeyUsage.critical,
      new asn1js.Sequence({ value: fixed.extendedKeyUsage.purposes.map((p) => new asn1js.ObjectIdentifier({ value: p })) }));
  }
  add(tail, extensionOid.authorityKeyIdentifier, false, new asn1js.Sequence({ value: [contextPrimitive(0, issuer.keyIdentifier)] }));
  if (fixed.policies.length) {
    add(tail, extensionOid.certificatePolicies, false, new asn1js.Sequence({
      value: fixed.policies.map((oid) => new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: oid })] })),
    }));
  }
  if (fixed.urls) {
    // DistributionPoint { distributionPoint [0] (CHOICE: explicit) { fullName [0] GeneralNames { [6] URI } } }
    add(tail, extensionOid.cRLDistributionPoints, false, new asn1js.Sequence({
      value: [new asn1js.Sequence({ value: [contextConstructed(0, [contextConstructed(0, [uri(fixed.urls.crl)])])] })],
    }));
    add(tail, extensionOid.authorityInfoAccess, false, new asn1js.Sequence({
      value: [
        new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: accessMethod.ocsp }), uri(fixed.urls.ocsp)] }),
        new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: accessMethod.caIssuers }), uri(fixed.urls.caIssuers)] }),
      ],
    }));
  }
  if (fixed.ocspNoCheck) add(tail, extensionOid.ocspNoCheck, false, new asn1js.Null());
  return { head: concat(head), tail: concat(tail), oids };
}

function concat(parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

/** Time ::= CHOICE { utcTime, generalTime }: UTCTime through 2049 (RFC 5280 s4.1.2.5). */
function time(d: Date): asn1js.BaseBlock {
  return d.getUTCFullYear() < 2050 ? new asn1js.UTCTime({ valueDate: d }) : new asn1js.GeneralizedTime({ valueDate: d });
}

function ipBytes(ip: string): Uint8Array {
  if (isIPv4(ip)) return new Uint8Array(ip.split('.').map(Number));
  // Expand an IPv6 address (with "::" and an optional dotted IPv4 tail) into 16 bytes.
  let text = ip;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = v4[1].split('.').map(Number);
    text = text.slice(0, -v4[1].length) + `${((b[0] << 8) | b[1]).toString(16)}:${((b[2] << 8) | b[3]).toString(16)}`;
  }
  const [left, right] = text.split('::');
  const l = left ? left.split(':') : [];
  const r = right !== undefined && right ? right.split(':') : [];
  const groups = right === undefined ? l : [...l, ...Array(8 - l.length - r.length).fill('0'), ...r];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => { const v = parseInt(g, 16); out[2 * i] = v >> 8; out[2 * i + 1] = v & 0xff; });
  return out;
}

function sanExtension(san: SubjectAltNames): Uint8Array | null {
  // GeneralName ::= CHOICE { rfc822Name [1] IA5String, dNSName [2] IA5String, iPAddress [7] OCTET STRING } (implicit tags)
  const names: asn1js.BaseBlock[] = [
    ...(san.email ?? []).map((e) => contextPrimitive(1, ascii(e))),
    ...(san.dns ?? []).map((d) => contextPrimitive(2, ascii(d))),
    ...(san.ip ?? []).map((a) => contextPrimitive(7, ipBytes(a))),
  ];
  if (names.length === 0) return null;
  return extension(extensionOid.subjectAltName, false, new asn1js.Sequence({ value: names }));
}

export class CertificateTemplate {
  readonly issuer: IssuerContext;
  /** Certificates issued in the same second share their Validity encoding. */
  #validityKey = '';
  #validity: Uint8Array = new Uint8Array(0);
  readonly #version: Uint8Array;
  readonly #signatureAlgorithm: Uint8Array;
  readonly #issuerName: Uint8Array;
  readonly #head: Uint8Array;
  readonly #tail: Uint8Array;

  constructor(issuer: IssuerContext, fixed: FixedExtensions) {
    this.issuer = issuer;
    this.#version = der(contextConstructed(0, [new asn1js.Integer({ value: 2 })]));
    this.#signatureAlgorithm = signatureAlgorithmDer(issuer.scheme);
    this.#issuerName = issuer.nameDer;
    const { head, tail, oids } = encodeFixedExtensions(fixed, issuer);
    // The variable extensions (SKI, SAN) are never among the fixed ones: no duplicates (RFC 5280 s4.2).
    const all = [...oids, extensionOid.subjectKeyIdentifier, extensionOid.subjectAltName];
    if (new Set(all).size !== all.length) throw new YinxinError('internal', 'a certificate template would repeat an extension');
    this.#head = head;
    this.#tail = tail;
  }

  /** The DER TBSCertificate (RFC 5280 s4.1) for these variable parts. */
  tbs(v: VariableParts): Uint8Array {
    const extensions: asn1js.BaseBlock[] = [
      raw(this.#head),
      raw(extension(extensionOid.subjectKeyIdentifier, false, new asn1js.OctetString({ valueHex: v.subjectKeyIdentifier }))),
      raw(this.#tail),
    ];
    const san = v.san ? sanExtension(v.san) : null;
    if (san) extensions.push(raw(san));
    return der(new asn1js.Sequence({
      value: [
        raw(this.#version),
        new asn1js.Integer({ valueHex: v.serial }),
        raw(this.#signatureAlgorithm),
        raw(this.#issuerName),
        raw(this.#validityDer(v.notBefore, v.notAfter)),
        raw(v.subjectDer),
        raw(v.publicKeyInfo),
        contextConstructed(3, [new asn1js.Sequence({ value: extensions })]),
      ],
    }));
  }

  #validityDer(notBefore: Date, notAfter: Date): Uint8Array {
    const key = `${notBefore.getTime()}/${notAfter.getTime()}`;
    if (key !== this.#validityKey) {
      this.#validity = der(new asn1js.Sequence({ value: [time(notBefore), time(notAfter)] }));
      this.#validityKey = key;
    }
    return this.#validity;
  }

  /** Builds, signs (one HSM call) and returns the DER certificate. */
  async issue(v: VariableParts): Promise<Uint8Array> {
    const tbs = this.tbs(v);
    const signature = await this.issuer.signer.sign(tbs, this.issuer.scheme);
    return der(new asn1js.Sequence({
      value: [raw(tbs), raw(this.#signatureAlgorithm), new asn1js.BitString({ valueHex: signature, unusedBits: 0 })],
    }));
  }
}
