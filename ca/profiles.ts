/**
 * Certificate profiles as data. Each row fixes what a certificate of that kind says (key usage,
 * extended key usage, validity, policies), what a request for one may contain (subject
 * attributes, subject alternative names, key algorithms and sizes) and how it is approved.
 * The URLs (AIA caIssuers + OCSP, CRL distribution point) come from the appliance's base URL.
 *
 * Identifier placement (see docs/ca.md):
 *   civil servants: the 18-character citizen ID number in serialNumber (2.5.4.5), the attribute
 *     X.520 defines for "an identifier of the subject", PrintableString-safe (digits and X);
 *   organizations:  the 18-character unified social credit code in organizationIdentifier
 *     (2.5.4.97, X.520 / ETSI EN 319 412-1), the attribute defined for a legal person's registration number.
 */
import { YinxinError } from '../common/errors.ts';

export type SubjectAttributeType =
  | 'C' | 'ST' | 'L' | 'O' | 'OU' | 'CN' | 'serialNumber' | 'organizationIdentifier'
  | 'emailAddress' | 'title' | 'givenName' | 'surname' | 'street' | 'postalCode';

export interface SubjectAttribute {
  type: SubjectAttributeType;
  value: string;
}

/** A distinguished name, most significant RDN first (C, ST, L, O, OU, CN ...), one attribute per RDN. */
export type Subject = SubjectAttribute[];

export interface SubjectAltNames {
  dns?: string[];
  email?: string[];
  ip?: string[];
}

export type KeyUsageBit =
  | 'digitalSignature' | 'nonRepudiation' | 'keyEncipherment' | 'dataEncipherment'
  | 'keyAgreement' | 'keyCertSign' | 'cRLSign';

/** Key usage bit positions, RFC 5280 s4.2.1.3. */
export const keyUsageBitPosition: Record<KeyUsageBit, number> = {
  digitalSignature: 0, nonRepudiation: 1, keyEncipherment: 2, dataEncipherment: 3,
  keyAgreement: 4, keyCertSign: 5, cRLSign: 6,
};

export const EKU = {
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  emailProtection: '1.3.6.1.5.5.7.3.4',
  timeStamping: '1.3.6.1.5.5.7.3.8',
  OCSPSigning: '1.3.6.1.5.5.7.3.9',
  /** RFC 9336 s3. */
  documentSigning: '1.3.6.1.5.5.7.3.36',
} as const;

export type KeyRule =
  | { type: 'ec'; curves: Array<'P-256' | 'P-384'> }
  | { type: 'rsa'; minBits: number; maxBits: number }
  | { type: 'ed25519' };

export type ProfileName =
  | 'civil-servant-signing' | 'civil-servant-encryption' | 'organization' | 'server-tls'
  | 'device' | 'ocsp-signer' | 'tsa' | 'seal' | 'appliance-tls';

export type IdentifierKind = 'citizen-id' | 'social-credit-code';

export interface Profile {
  name: ProfileName;
  description: string;
  keyUsage: KeyUsageBit[];
  /** null: no EKU extension. */
  extendedKeyUsage: { purposes: string[]; critical: boolean } | null;
  validityDays: number;
  /** Short names of the policies (mapped to OIDs by ProfileConfig.policyOids). */
  policies: string[];
  subject: {
    required: SubjectAttributeType[];
    /** Everything not in required or allowed is refused ('policy-violation'). */
    allowed: SubjectAttributeType[];
    identifier?: { attribute: SubjectAttributeType; kind: IdentifierKind };
  };
  san: {
    dns: 'required' | 'allowed' | 'forbidden';
    email: 'required' | 'allowed' | 'forbidden';
    ip: 'allowed' | 'forbidden';
    /** Single-label DNS names such as 'localhost' (only for the appliance's own intranet certificate). */
    singleLabelDns?: boolean;
  };
  keys: KeyRule[];
  /** Distinct RA officers (never the requester) who must approve before issuance. */
  approvers: 1 | 2;
  /** 'csr': the subject brings its own key; 'csr-or-generated': the appliance may generate it on their behalf. */
  keySource: 'csr' | 'csr-or-generated';
  /** The private key, when generated here, is archived encrypted under an HSM key (encryption keys only). */
  archiveGeneratedKey: boolean;
  /** Pair semantics: the encryption certificate is only issued together with a signing one. */
  pair?: { role: 'signing'; partner: ProfileName } | { role: 'encryption'; partner: ProfileName };
  /** id-pkix-ocsp-nocheck (RFC 6960 s4.2.2.2.1). */
  ocspNoCheck: boolean;
  /** Issued by the appliance to itself (OCSP, TSA, TLS), never through the RA. */
  service: boolean;
}

const ecdsa: KeyRule = { type: 'ec', curves: ['P-256', 'P-384'] };
const rsa: KeyRule = { type: 'rsa', minBits: 2048, maxBits: 8192 };
const ed25519: KeyRule = { type: 'ed25519' };

const personName: SubjectAttributeType[] = ['givenName', 'surname', 'title', 'emailAddress', 'OU', 'L', 'ST'];
const place: SubjectAttributeType[] = ['ST', 'L', 'OU', 'street', 'postalCode'];

/** The profile table. */
export const profiles: Record<ProfileName, Profile> = {
  'civil-servant-signing': {
    name: 'civil-servant-signing',
    description: 'Civil servant signing certificate (login, e-mail, document signing; RFC 9336)',
    keyUsage: ['digitalSignature', 'nonRepudiation'],
    extendedKeyUsage: { purposes: [EKU.clientAuth, EKU.emailProtection, EKU.documentSigning], critical: false },
    validityDays: 730,
    policies: ['civil-servant'],
    subject: { required: ['C', 'O', 'CN', 'serialNumber'], allowed: personName, identifier: { attribute: 'serialNumber', kind: 'citizen-id' } },
    san: { dns: 'forbidden', email: 'allowed', ip: 'forbidden' },
    keys: [ecdsa, rsa, ed25519],
    approvers: 1,
    keySource: 'csr-or-generated',
    archiveGeneratedKey: false,
    pair: { role: 'signing', partner: 'civil-servant-encryption' },
    ocspNoCheck: false,
    service: false,
  },
  'civil-servant-encryption': {
    name: 'civil-servant-encryption',
    description: 'Civil servant encryption certificate, issued as a pair with the signing one; key may be generated and archived',
    keyUsage: ['keyEncipherment', 'keyAgreement'],
    extendedKeyUsage: { purposes: [EKU.emailProtection], critical: false },
    validityDays: 730,
    policies: ['civil-servant'],
    subject: { required: ['C', 'O', 'CN', 'serialNumber'], allowed: personName, identifier: { attribute: 'serialNumber', kind: 'citizen-id' } },
    san: { dns: 'forbidden', email: 'allowed', ip: 'forbidden' },
    // keyEncipherment needs RSA and keyAgreement needs EC; Ed25519 can do neither.
    keys: [ecdsa, rsa],
    approvers: 1,
    keySource: 'csr-or-generated',
    archiveGeneratedKey: true,
    pair: { role: 'encryption', partner: 'civil-servant-signing' },
    ocspNoCheck: false,
    service: false,
  },
  organization: {
    name: 'organization',
    description: 'Organization (unit) certificate',
    keyUsage: ['digitalSignature', 'nonRepudiation'],
    extendedKeyUsage: { purposes: [EKU.clientAuth, EKU.documentSigning], critical: false },
    validityDays: 1095,
    policies: ['organization'],
    subject: { required: ['C', 'O', 'CN', 'organizationIdentifier'], allowed: place, identifier: { attribute: 'organizationIdentifier', kind: 'social-credit-code' } },
    san: { dns: 'forbidden', email: 'allowed', ip: 'forbidden' },
    keys: [ecdsa, rsa],
    approvers: 2,
    keySource: 'csr',
    archiveGeneratedKey: false,
    ocspNoCheck: false,
    service: false,
  },
  'server-tls': {
    name: 'server-tls',
    description: 'Application server TLS certificate',
    keyUsage: ['digitalSignature', 'keyEncipherment'],
    extendedKeyUsage: { purposes: [EKU.serverAuth], critical: false },
    validityDays: 397,
    policies: ['server'],
    subject: { required: ['CN'], allowed: ['C', 'O', 'OU', 'ST', 'L', 'organizationIdentifier'] },
    san: { dns: 'required', email: 'forbidden', ip: 'allowed' },
    keys: [ecdsa, rsa],
    approvers: 1,
    keySource: 'csr',
    archiveGeneratedKey: false,
    ocspNoCheck: false,
    service: false,
  },
  device: {
    name: 'device',
    description: 'Device certificate (terminals, IoT, network equipment)',
    keyUsage: ['digitalSignature', 'keyAgreement'],
    extendedKeyUsage: { purposes: [EKU.clientAuth], critical: false },
    validityDays: 1825,
    policies: ['device'],
    subject: { required: ['CN'], allowed: ['C', 'O', 'OU', 'serialNumber', 'L', 'ST'] },
    san: { dns: 'allowed', email: 'forbidden', ip: 'allowed' },
    keys: [ecdsa, rsa, ed25519],
    approvers: 1,
    keySource: 'csr',
    archiveGeneratedKey: false,
    ocspNoCheck: false,
    service: false,
  },
  seal: {
    name: 'seal',
    description: 'Electronic seal certificate (bound to an organization)',
    keyUsage: ['digitalSignature', 'nonRepudiation'],
    extendedKeyUsage: { purposes: [EKU.documentSigning], critical: false },
    validityDays: 1095,
    policies: ['seal'],
    subject: { required: ['C', 'O', 'CN', 'organizationIdentifier'], allowed: place, identifier: { attribute: 'organizationIdentifier', kind: 'social-credit-code' } },
    san: { dns: 'forbidden', email: 'forbidden', ip: 'forbidden' },
    keys: [ecdsa, rsa],
    approvers: 2,
    keySource: 'csr',
    archiveGeneratedKey: false,
    ocspNoCheck: false,
    service: false,
  },
  'ocsp-signer': {
    name: 'ocsp-signer',
    description: 'OCSP responder signing certificate (delegated, RFC 6960 s4.2.2.2)',
    keyUsage: ['digitalSignature'],
    extendedKeyUsage: { purposes: [EKU.OCSPSigning], critical: false },
    validityDays: 365,
    policies: ['service'],
    subject: { required: ['CN'], allowed: ['C', 'O', 'OU'] },
    san: { dns: 'forbidden', email: 'forbidden', ip: 'forbidden' },
    keys: [ecdsa, rsa, ed25519],
    approvers: 1,
    keySource: 'csr',
    archiveGeneratedKey: false,
    ocspNoCheck: true,
    service: true,
  },
  tsa: {
    name: 'tsa',
    description: 'Time-stamping unit certificate (RFC 3161 s2.3: EKU timeStamping only, critical)',
    keyUsage: ['digitalSignature', 'nonRepudiation'],
    extendedKeyUsage: { purposes: [EKU.timeStamping], critical: true },
    validityDays: 1095,
    policies: ['service'],
    subject: { required: ['CN'], allowed: ['C', 'O', 'OU'] },
    san: { dns: 'forbidden', email: 'forbidden', ip: 'forbidden' },
    keys: [ecdsa, rsa, ed25519],
    approvers: 1,
    keySource: 'csr',
    archiveGeneratedKey: false,
    ocspNoCheck: false,
    service: true,
  },
  'appliance-tls': {
    name: 'appliance-tls',
    description: "The appliance's own HTTPS certificate",
    keyUsage: ['digitalSignature', 'keyEncipherment'],
    extendedKeyUsage: { purposes: [EKU.serverAuth], critical: false },
    validityDays: 397,
    policies: ['service'],
    subject: { required: ['CN'], allowed: ['C', 'O', 'OU'] },
    san: { dns: 'allowed', email: 'forbidden', ip: 'allowed', singleLabelDns: true },
    keys: [ecdsa, rsa],
    approvers: 1,
    keySource: 'csr',
    archiveGeneratedKey: false,
    ocspNoCheck: false,
    service: true,
  },
};

export function getProfile(name: string): Profile {
  if (!Object.hasOwn(profiles, name)) {
    throw new YinxinError('not-found', `no certificate profile named "${name}"`, { profile: name, known: Object.keys(profiles) });
  }
  return profiles[name as ProfileName];
}

/**
 * The deployment's policy OIDs. The defaults live under a 2.25 (UUID-derived, ITU-T X.667) arc so
 * they never squat on someone else's OID space; a deployment sets its registered policy OIDs.
 */
export const defaultPolicyOids: Record<string, string> = {
  'civil-servant': '2.25.238463219418230195361806478227375470041.1',
  organization: '2.25.238463219418230195361806478227375470041.2',
  server: '2.25.238463219418230195361806478227375470041.3',
  device: '2.25.238463219418230195361806478227375470041.4',
  seal: '2.25.238463219418230195361806478227375470041.5',
  service: '2.25.238463219418230195361806478227375470041.6',
};

export interface ProfileConfig {
  /** e.g. 'http://pki.example.gov.cn:8080' (no trailing slash); AIA/CDP URLs are built from it. */
  baseUrl: string;
  policyOids?: Record<string, string>;
}

export interface DistributionUrls {
  caIssuers: string;
  ocsp: string;
  crl: string;
  /** The delta CRL (RFC 5280 s5.2.6 Freshest CRL of the full CRL points here). */
  deltaCrl: string;
}

export function distributionUrls(baseUrl: string, caName: string): DistributionUrls {
  const base = baseUrl.replace(/\/+$/, '');
  return {
    caIssuers: `${base}/ca/${encodeURIComponent(caName)}.crt`,
    ocsp: `${base}/ocsp`,
    crl: `${base}/crl/${encodeURIComponent(caName)}.crl`,
    deltaCrl: `${base}/crl/${encodeURIComponent(caName)}-delta.crl`,
  };
}

export function policyOidsFor(profile: Profile, config: ProfileConfig): string[] {
  const table = { ...defaultPolicyOids, ...config.policyOids };
  return profile.policies.map((p) => {
    const oid = table[p];
    if (!oid || !/^[0-2](\.\d+)+$/.test(oid)) throw new YinxinError('config-invalid', `no valid OID configured for certificate policy "${p}"`);
    return oid;
  });
}
