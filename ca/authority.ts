/**
 * The certificate authority core: the CA hierarchy (keys in the KeyStore, certificates in the
 * store), issuance against a profile, the certificate table with its index tables, and
 * revocation state (revoke, suspend with certificateHold, release).
 *
 * Storage (explicit index tables, as step-ca's buckets):
 *   ca.authorities          name -> AuthorityRecord
 *   ca.certificates         [ca, serialHex] -> CertificateRecord
 *   ca.index.subject        [lower(CN), ca, serialHex] -> 1
 *   ca.index.identifier     [citizen ID | credit code, ca, serialHex] -> 1
 *   ca.index.organization   [O, ca, serialHex] -> 1
 *   ca.index.status         [status, ca, serialHex] -> 1
 *   ca.index.expiry         [notAfter ISO, ca, serialHex] -> 1
 *   ca.status-changes       [ca, ISO time, serialHex] -> status (feeds delta CRLs)
 * Every state change and its audit record are one store transaction.
 */
import { randomBytes } from 'node:crypto';
import type { AuditLog } from '../audit/types.ts';
import type { Clock } from '../common/clock.ts';
import { YinxinError } from '../common/errors.ts';
import { toPem } from '../common/pem.ts';
import { defaultScheme, describeKeySpec } from '../hsm/algorithms.ts';
import type { KeySpec, KeyStore, SignatureScheme, Signer } from '../hsm/signer.ts';
import { pageOf, type Page } from '../store/paging.ts';
import type { Key, Store, Table, Tx } from '../store/store.ts';
import { CertificateTemplate, keyUsageForKey, type FixedExtensions, type IssuerContext } from './certificate.ts';
import { checkKeyAllowed, describeKey, readSubjectPublicKey, type PublicKeyKind, type SubjectPublicKey } from './keys.ts';
import { distributionUrls, getProfile, policyOidsFor, type Profile, type ProfileConfig, type Subject, type SubjectAltNames } from './profiles.ts';
import { checkSan, checkSubject, checkSubjectValues, encodeName, formatSubject } from './subject.ts';

export interface AuthorityRecord {
  name: string;
  /** null for a root. */
  parent: string | null;
  keyLabel: string;
  spec: KeySpec;
  scheme: SignatureScheme;
  subject: Subject;
  nameDer: Uint8Array;
  keyIdentifier: Uint8Array;
  certificate: Uint8Array;
  serial: string;
  notBefore: string;
  notAfter: string;
  createdAt: string;
}

export type CertificateStatus = 'good' | 'revoked' | 'hold';

export interface CertificateRecord {
  ca: string;
  /** Lower-case hex of the serial's INTEGER content bytes. */
  serial: string;
  profile: string;
  subject: string;
  subjectAttributes: Subject;
  identifier?: string;
  organization?: string;
  san?: SubjectAltNames;
  key: string;
  /** Hex SKI. */
  keyIdentifier: string;
  notBefore: string;
  notAfter: string;
  issuedAt: string;
  status: CertificateStatus;
  revokedAt?: string;
  /** RFC 5280 s5.3.1 CRLReason. */
  reason?: number;
  invalidityDate?: string;
  requestId?: string;
  /** The other half of a signing/encryption pair. */
  pairSerial?: string;
  der: Uint8Array;
}

/** RFC 5280 s5.3.1. 7 is unused; removeFromCRL (8) only appears in delta CRLs. */
export const revocationReasons = {
  unspecified: 0, keyCompromise: 1, cACompromise: 2, affiliationChanged: 3, superseded: 4,
  cessationOfOperation: 5, certificateHold: 6, removeFromCRL: 8, privilegeWithdrawn: 9, aACompromise: 10,
} as const;

export interface CaDefinition {
  name: string;
  subject: Subject;
  spec: KeySpec;
  validityDays: number;
}

export interface HierarchyConfig {
  root: CaDefinition;
  issuing: CaDefinition[];
}

export const defaultHierarchy: HierarchyConfig = {
  root: { name: 'root', subject: [{ type: 'C', value: 'CN' }, { type: 'O', value: 'yinxin' }, { type: 'CN', value: 'yinxin Root CA' }], spec: { type: 'ec', curve: 'P-256' }, validityDays: 20 * 365 },
  issuing: [{ name: 'issuing', subject: [{ type: 'C', value: 'CN' }, { type: 'O', value: 'yinxin' }, { type: 'CN', value: 'yinxin Issuing CA' }], spec: { type: 'ec', curve: 'P-256' }, validityDays: 10 * 365 }],
};

export interface AuthorityOptions extends ProfileConfig {
  /** notBefore is set this far in the past to tolerate relying parties' clock skew. Default 0. */
  backdateSeconds?: number;
}

export interface AuthorityDeps {
  store: Store;
  keys: KeyStore;
  audit: AuditLog;
  clock: Clock;
  options: AuthorityOptions;
}

export interface IssueInput {
  ca: string;
  profile: string;
  subject: Subject;
  san?: SubjectAltNames;
  publicKeyInfo: Uint8Array;
  requestId?: string;
  pairSerial?: string;
  /** The key as read and checked when the request was accepted (skips parsing it again). */
  checkedKey?: SubjectPublicKey;
}

/** A signed certificate not yet stored: commit() it inside a transaction. */
export interface PreparedCertificate {
  record: CertificateRecord;
}

export interface Actor {
  /** The audit trail's actor string ('operator:alice', 'token:<id>(alice)', 'system'). */
  actor: string;
  /**
   * The person behind it (an operator's user name). Separation of duties compares persons, so
   * alice's session and alice's API token count as one officer. Defaults to `actor`.
   */
  person?: string;
  requestId?: string;
}

export function personOf(actor: Actor): string {
  return actor.person ?? actor.actor;
}

export interface SearchQuery {
  ca?: string;
  /** Common name prefix, case-insensitive. */
  subject?: string;
  identifier?: string;
  organization?: string;
  status?: CertificateStatus;
  profile?: string;
  expiresBefore?: Date;
  expiresAfter?: Date;
  limit?: number;
}

const CA_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
const MAX = '\uffff';
const DAY = 86_400_000;

interface LoadedCa {
  record: AuthorityRecord;
  signer: Signer;
  issuer: IssuerContext;
  notBefore: Date;
  notAfter: Date;
}

function hex(u: Uint8Array): string {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString('hex');
}

function wholeSeconds(d: Date): Date {
  return new Date(Math.floor(d.getTime() / 1000) * 1000);
}

/** >= 64 random bits (here 126), positive and minimally encoded: first byte 0x40..0x7f (RFC 5280 s4.1.2.2). */
export function randomSerial(): Uint8Array {
  if (serialPoolOffset + 16 > serialPool.length) {
    serialPool = new Uint8Array(randomBytes(16 * 256));
    serialPoolOffset = 0;
  }
  const s = serialPool.slice(serialPoolOffset, serialPoolOffset + 16);
  serialPoolOffset += 16;
  s[0] = (s[0] & 0x3f) | 0x40;
  return s;
}
// CSPRNG output drawn in blocks (one call per 256 serials); each byte is used once.
let serialPool = new Uint8Array(0);
let serialPoolOffset = 0;

export class CertificateAuthority {
  readonly #store: Store;
  readonly #keys: KeyStore;
  readonly #audit: AuditLog;
  readonly #clock: Clock;
  readonly #options: AuthorityOptions;
  readonly #cas = new Map<string, LoadedCa>();
  readonly #templates = new Map<string, CertificateTemplate>();
  readonly #statusListeners: Array<(ca: string) => void> = [];

  readonly authorities: Table<AuthorityRecord>;
  readonly certificates: Table<CertificateRecord>;
  readonly index: {
    subject: Table<1>; identifier: Table<1>; organization: Table<1>; status: Table<1>; expiry: Table<1>;
  };
  readonly statusChanges: Table<CertificateStatus>;

  private constructor(deps: AuthorityDeps) {
    this.#store = deps.store;
    this.#keys = deps.keys;
    this.#audit = deps.audit;
    this.#clock = deps.clock;
    this.#options = deps.options;
    this.authorities = deps.store.table('ca.authorities');
    this.certificates = deps.store.table('ca.certificates');
    this.index = {
      subject: deps.store.table('ca.index.subject'),
      identifier: deps.store.table('ca.index.identifier'),
      organization: deps.store.table('ca.index.organization'),
      status: deps.store.table('ca.index.status'),
      expiry: deps.store.table('ca.index.expiry'),
    };
    this.statusChanges = deps.store.table('ca.status-changes');
  }

  /** Opens the tables and loads every CA already in the store (its signer from the KeyStore). */
  static async open(deps: AuthorityDeps): Promise<CertificateAuthority> {
    const ca = new CertificateAuthority(deps);
    for (const { value } of ca.authorities.range()) await ca.#load(value);
    return ca;
  }

  get clock(): Clock {
    return this.#clock;
  }

  /** First start: creates the root and the issuing CAs unless the store already has a root. Idempotent. */
  async initialize(config: HierarchyConfig = defaultHierarchy, actor: Actor = { actor: 'system' }): Promise<void> {
    if (!this.#cas.has(config.root.name)) await this.createRoot(config.root, actor);
    for (const def of config.issuing) if (!this.#cas.has(def.name)) await this.createIssuingCa(def, config.root.name, actor);
  }

  async createRoot(def: CaDefinition, actor: Actor): Promise<AuthorityRecord> {
    return this.#createCa(def, null, actor);
  }

  /** `yinxin ca create`: a further issuing CA (a device CA, say) under `parent`. */
  async createIssuingCa(def: CaDefinition, parent: string, actor: Actor): Promise<AuthorityRecord> {
    return this.#createCa(def, parent, actor);
  }

  async #createCa(def: CaDefinition, parentName: string | null, actor: Actor): Promise<AuthorityRecord> {
    if (!CA_NAME.test(def.name)) throw new YinxinError('validation-failed', `CA name "${def.name}" must be lower-case letters, digits and hyphens`, { field: 'name' });
    if (this.#cas.has(def.name) || this.authorities.has(def.name)) throw new YinxinError('conflict', `a CA named "${def.name}" already exists`, { ca: def.name });
    if (!Number.isInteger(def.validityDays) || def.validityDays < 1) throw new YinxinError('validation-failed', 'CA validity must be a positive number of days', { field: 'validityDays' });
    const subject = checkSubjectValues(def.subject);
    const parent = parentName === null ? null : this.#get(parentName);
    const now = wholeSeconds(this.#clock.now());
    if (parent) this.#assertUsable(parent, now);

    const keyLabel = `ca/${def.name}`;
    // A key left behind by an attempt that failed before its record was stored is replaced.
    if (await this.#keys.hasKey(keyLabel)) await this.#keys.deleteKey(keyLabel);
    const signer = await this.#keys.generateKeyPair(keyLabel, def.spec);
    const spki = readSubjectPublicKey(signer.publicKeyInfo);
    const nameDer = encodeName(subject);
    const scheme = defaultScheme(def.spec);
    const issuer: IssuerContext = parent ? parent.issuer : { nameDer, keyIdentifier: spki.keyIdentifier, signer, scheme };
    const fixed: FixedExtensions = {
      basicConstraints: parent ? { ca: true, pathLength: 0 } : { ca: true },
      keyUsage: ['digitalSignature', 'keyCertSign', 'cRLSign'],
      extendedKeyUsage: null,
      // An issuing CA carries anyPolicy so that policy-checking relying parties accept the profiles' policies.
      policies: parent ? ['2.5.29.32.0'] : [],
      urls: parent ? distributionUrls(this.#options.baseUrl, parent.record.name) : null,
      ocspNoCheck: false,
    };
    const notBefore = parent && now < parent.notBefore ? parent.notBefore : now;
    let notAfter = new Date(notBefore.getTime() + def.validityDays * DAY);
    if (parent && notAfter > parent.notAfter) notAfter = parent.notAfter;
    const serial = randomSerial();
    const der = await new CertificateTemplate(issuer, fixed).issue({
      serial, notBefore, notAfter, subjectDer: nameDer, publicKeyInfo: signer.publicKeyInfo, subjectKeyIdentifier: spki.keyIdentifier,
    });
    const record: AuthorityRecord = {
      name: def.name, parent: parentName, keyLabel, spec: def.spec, scheme, subject, nameDer,
      keyIdentifier: spki.keyIdentifier, certificate: der, serial: hex(serial),
      notBefore: notBefore.toISOString(), notAfter: notAfter.toISOString(), createdAt: now.toISOString(),
    };
    const certRecord: CertificateRecord | null = parent ? {
      ca: parent.record.name, serial: hex(serial), profile: 'sub-ca', subject: formatSubject(subject), subjectAttributes: subject,
      organization: subject.find((a) => a.type === 'O')?.value, key: describeKeySpec(def.spec), keyIdentifier: hex(spki.keyIdentifier),
      notBefore: record.notBefore, notAfter: record.notAfter, issuedAt: now.toISOString(), status: 'good', der,
    } : null;
    await this.#store.transaction((tx) => {
      if (tx.get(this.authorities, def.name)) throw new YinxinError('conflict', `a CA named "${def.name}" already exists`, { ca: def.name });
      tx.put(this.authorities, def.name, record);
      if (certRecord) this.#putCertificate(tx, certRecord);
      this.#audit.append(tx, {
        actor: actor.actor, action: 'ca.create', object: `ca:${def.name}`, outcome: 'success', requestId: actor.requestId,
        details: { parent: parentName, key: describeKeySpec(def.spec), serial: record.serial, notAfter: record.notAfter },
      });
    });
    await this.#load(record);
    return record;
  }

  async #load(record: AuthorityRecord): Promise<void> {
    const signer = await this.#keys.getSigner(record.keyLabel);
    this.#cas.set(record.name, {
      record,
      signer,
      issuer: { nameDer: record.nameDer, keyIdentifier: record.keyIdentifier, signer, scheme: record.scheme },
      notBefore: new Date(record.notBefore),
      notAfter: new Date(record.notAfter),
    });
  }

  #get(name: string): LoadedCa {
    const ca = this.#cas.get(name);
    if (!ca) throw new YinxinError('unknown-issuer', `no CA named "${name}" on this appliance`, { ca: name });
    return ca;
  }

  #assertUsable(ca: LoadedCa, now: Date): void {
    if (now >= ca.notAfter) throw new YinxinError('ca-expired', `the certificate of CA "${ca.record.name}" expired at ${ca.record.notAfter}`, { ca: ca.record.name, notAfter: ca.record.notAfter });
    if (now < ca.notBefore) throw new YinxinError('ca-expired', `the certificate of CA "${ca.record.name}" is not valid before ${ca.record.notBefore}`, { ca: ca.record.name, notBefore: ca.record.notBefore });
  }

  listAuthorities(): AuthorityRecord[] {
    return [...this.#cas.values()].map((c) => c.record);
  }

  getAuthority(name: string): AuthorityRecord {
    return this.#get(name).record;
  }

  /** DER certificate of a CA (GET /ca/{ca}.crt). */
  caCertificate(name: string): Uint8Array {
    return this.#get(name).record.certificate;
  }

  /** The CA's certificate and those above it, ending with the root. */
  caChain(name: string): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (let ca: LoadedCa | null = this.#get(name); ca; ca = ca.record.parent ? this.#get(ca.record.parent) : null) out.push(ca.record.certificate);
    return out;
  }

  /** What a CRL or OCSP response signer needs from a CA. */
  issuerOf(name: string): { nameDer: Uint8Array; keyIdentifier: Uint8Array; signer: Signer; crlUrl: string; deltaCrlUrl: string } {
    const ca = this.#get(name);
    const urls = distributionUrls(this.#options.baseUrl, name);
    return { nameDer: ca.record.nameDer, keyIdentifier: ca.record.keyIdentifier, signer: ca.signer, crlUrl: urls.crl, deltaCrlUrl: urls.deltaCrl };
  }

  #template(ca: LoadedCa, profile: Profile, kind: PublicKeyKind): CertificateTemplate {
    const family = kind.type;
    const key = `${ca.record.name}\u0000${profile.name}\u0000${family}`;
    let t = this.#templates.get(key);
    if (!t) {
      t = new CertificateTemplate(ca.issuer, {
        basicConstraints: { ca: false },
        keyUsage: keyUsageForKey(profile.keyUsage, kind),
        extendedKeyUsage: profile.extendedKeyUsage,
        policies: policyOidsFor(profile, this.#options),
        urls: distributionUrls(this.#options.baseUrl, ca.record.name),
        ocspNoCheck: profile.ocspNoCheck,
      });
      this.#templates.set(key, t);
    }
    return t;
  }

  /**
   * Checks the request against the profile, then builds and signs the certificate (one HSM
   * call). Nothing is stored: pass the result to commit() inside a transaction.
   */
  async prepare(input: IssueInput): Promise<PreparedCertificate> {
    const profile = getProfile(input.profile);
    const ca = this.#get(input.ca);
    const now = wholeSeconds(this.#clock.now());
    this.#assertUsable(ca, now);
    const subject = checkSubject(profile, input.subject, now);
    const san = checkSan(profile, input.san, subject);
    const key = input.checkedKey ?? readSubjectPublicKey(input.publicKeyInfo);
    checkKeyAllowed(profile, key.kind);
    const template = this.#template(ca, profile, key.kind);

    // Validity never extends beyond the issuer's (RFC 5280 s6.1.3 would reject it on many validators).
    let notBefore = new Date(now.getTime() - (this.#options.backdateSeconds ?? 0) * 1000);
    if (notBefore < ca.notBefore) notBefore = ca.notBefore;
    let notAfter = new Date(notBefore.getTime() + profile.validityDays * DAY);
    if (notAfter > ca.notAfter) notAfter = ca.notAfter;
    const serial = randomSerial();
    const subjectDer = encodeName(subject);
    const der = await template.issue({ serial, notBefore, notAfter, subjectDer, publicKeyInfo: key.der, subjectKeyIdentifier: key.keyIdentifier, san });
    const idAttr = profile.subject.identifier?.attribute;
    const record: CertificateRecord = {
      ca: input.ca,
      serial: hex(serial),
      profile: profile.name,
      subject: formatSubject(subject),
      subjectAttributes: subject,
      key: describeKey(key.kind),
      keyIdentifier: hex(key.keyIdentifier),
      notBefore: notBefore.toISOString(),
      notAfter: notAfter.toISOString(),
      issuedAt: now.toISOString(),
      status: 'good',
      der,
    };
    const identifier = idAttr ? subject.find((a) => a.type === idAttr)?.value : undefined;
    const organization = subject.find((a) => a.type === 'O')?.value;
    if (identifier !== undefined) record.identifier = identifier;
    if (organization !== undefined) record.organization = organization;
    if (san.dns || san.email || san.ip) record.san = san;
    if (input.requestId !== undefined) record.requestId = input.requestId;
    if (input.pairSerial !== undefined) record.pairSerial = input.pairSerial;
    return { record };
  }

  /**
   * Stores a prepared certificate with its index entries and audit record, in the caller's
   * transaction. The serial's uniqueness per CA is checked here, where it cannot race.
   */
  commit(tx: Tx, prepared: PreparedCertificate, actor: Actor): CertificateRecord {
    const r = prepared.record;
    if (tx.get(this.certificates, [r.ca, r.serial])) throw new YinxinError('conflict', `serial ${r.serial} is already in use by CA ${r.ca}`, { ca: r.ca, serial: r.serial });
    this.#putCertificate(tx, r);
    this.#audit.append(tx, {
      actor: actor.actor, action: 'certificate.issue', object: `cert:${r.ca}/${r.serial}`, outcome: 'success', requestId: actor.requestId,
      details: { profile: r.profile, subject: r.subject, notAfter: r.notAfter, ...(r.requestId ? { request: r.requestId } : {}) },
    });
    return r;
  }

  /** prepare() + commit() in a transaction of its own (service certificates, tests, renewals). */
  async issue(input: IssueInput, actor: Actor): Promise<CertificateRecord> {
    for (let attempt = 0; ; attempt++) {
      const prepared = await this.prepare(input);
      try {
        return await this.#store.transaction((tx) => this.commit(tx, prepared, actor));
      } catch (e) {
        // A serial collision (p ~ 2^-126) is retried with a fresh serial.
        if (attempt < 2 && e instanceof YinxinError && e.code === 'conflict' && e.details?.serial === prepared.record.serial) continue;
        throw e;
      }
    }
  }

  /**
   * A certificate for one of the appliance's own keys (OCSP signer, TSA, appliance TLS): the
   * composition root generates the key in the HSM and calls this at first start.
   */
  async issueServiceCertificate(ca: string, profile: 'ocsp-signer' | 'tsa' | 'appliance-tls', signer: Signer, subject: Subject, san?: SubjectAltNames): Promise<CertificateRecord> {
    return this.issue({ ca, profile, subject, san, publicKeyInfo: signer.publicKeyInfo }, { actor: 'system' });
  }

  #putCertificate(tx: Tx, r: CertificateRecord): void {
    tx.put(this.certificates, [r.ca, r.serial], r);
    for (const [table, key] of this.#indexKeys(r)) tx.put(table, key, 1);
  }

  #indexKeys(r: CertificateRecord): Array<[Table<1>, Key]> {
    const keys: Array<[Table<1>, Key]> = [];
    const cn = r.subjectAttributes.find((a) => a.type === 'CN')?.value;
    if (cn !== undefined) keys.push([this.index.subject, [cn.toLowerCase(), r.ca, r.serial]]);
    if (r.identifier !== undefined) keys.push([this.index.identifier, [r.identifier, r.ca, r.serial]]);
    if (r.organization !== undefined) keys.push([this.index.organization, [r.organization, r.ca, r.serial]]);
    keys.push([this.index.status, [r.status, r.ca, r.serial]]);
    keys.push([this.index.expiry, [r.notAfter, r.ca, r.serial]]);
    return keys;
  }

  get(ca: string, serial: string): CertificateRecord | undefined {
    return this.certificates.get([ca, serial.toLowerCase()]);
  }

  /** As get(), but possibly an object shared with other callers while the record is unchanged (Table.getShared): do not modify it. */
  getShared(ca: string, serial: string): Readonly<CertificateRecord> | undefined {
    return this.certificates.getShared([ca, serial.toLowerCase()]);
  }

  #mustGet(tx: Tx, ca: string, serial: string): CertificateRecord {
    this.#get(ca);
    const s = normalizeSerial(serial);
    const r = tx.get(this.certificates, [ca, s]);
    if (!r) throw new YinxinError('not-found', `CA "${ca}" has issued no certificate with serial ${s}`, { ca, serial: s });
    return r;
  }

  #setStatus(tx: Tx, r: CertificateRecord, next: CertificateRecord, at: Date): void {
    tx.remove(this.index.status, [r.status, r.ca, r.serial]);
    tx.put(this.index.status, [next.status, next.ca, next.serial], 1);
    tx.put(this.certificates, [next.ca, next.serial], next);
    tx.put(this.statusChanges, [next.ca, at.toISOString(), next.serial], next.status);
    tx.afterCommit(() => { for (const l of this.#statusListeners) l(next.ca); });
  }

  /** Called after every committed status change (the CRL publisher debounces on it). */
  onStatusChange(listener: (ca: string) => void): void {
    this.#statusListeners.push(listener);
  }

  /** Revokes with an RFC 5280 reason code; a certificate on hold may be revoked for good. */
  async revoke(input: { ca: string; serial: string; reason: number; invalidityDate?: Date }, actor: Actor): Promise<CertificateRecord> {
    const reason = input.reason;
    if (!Number.isInteger(reason) || reason < 0 || reason > 10 || reason === 7 || reason === revocationReasons.removeFromCRL || reason === revocationReasons.certificateHold) {
      throw new YinxinError('validation-failed', `revocation reason ${reason} is not allowed (use 0-5, 9, 10; suspend for certificateHold)`, { field: 'reason' });
    }
    const now = wholeSeconds(this.#clock.now());
    if (input.invalidityDate && !(input.invalidityDate.getTime() <= now.getTime())) {
      throw new YinxinError('validation-failed', 'the invalidity date cannot be in the future', { field: 'invalidityDate' });
    }
    return this.#store.transaction((tx) => {
      const r = this.#mustGet(tx, input.ca, input.serial);
      if (r.status === 'revoked') throw new YinxinError('already-revoked', `certificate ${r.serial} of CA ${r.ca} was already revoked at ${r.revokedAt}`, { ca: r.ca, serial: r.serial, revokedAt: r.revokedAt });
      const next: CertificateRecord = { ...r, status: 'revoked', reason, revokedAt: r.status === 'hold' && r.revokedAt ? r.revokedAt : now.toISOString() };
      if (input.invalidityDate) next.invalidityDate = wholeSeconds(input.invalidityDate).toISOString();
      this.#setStatus(tx, r, next, now);
      this.#audit.append(tx, {
        actor: actor.actor, action: 'certificate.revoke', object: `cert:${r.ca}/${r.serial}`, outcome: 'success', requestId: actor.requestId,
        details: { reason, ...(next.invalidityDate ? { invalidityDate: next.invalidityDate } : {}) },
      });
      return next;
    });
  }

  /** Suspends (reason certificateHold): a reversible revocation. */
  async suspend(input: { ca: string; serial: string }, actor: Actor): Promise<CertificateRecord> {
    const now = wholeSeconds(this.#clock.now());
    return this.#store.transaction((tx) => {
      const r = this.#mustGet(tx, input.ca, input.serial);
      if (r.status === 'revoked') throw new YinxinError('already-revoked', `certificate ${r.serial} of CA ${r.ca} is revoked`, { ca: r.ca, serial: r.serial });
      if (r.status === 'hold') throw new YinxinError('conflict', `certificate ${r.serial} of CA ${r.ca} is already suspended`, { ca: r.ca, serial: r.serial });
      const next: CertificateRecord = { ...r, status: 'hold', reason: revocationReasons.certificateHold, revokedAt: now.toISOString() };
      this.#setStatus(tx, r, next, now);
      this.#audit.append(tx, { actor: actor.actor, action: 'certificate.suspend', object: `cert:${r.ca}/${r.serial}`, outcome: 'success', requestId: actor.requestId });
      return next;
    });
  }

  /** Releases a suspended certificate (it leaves the CRL; delta CRLs say removeFromCRL). */
  async release(input: { ca: string; serial: string }, actor: Actor): Promise<CertificateRecord> {
    const now = wholeSeconds(this.#clock.now());
    return this.#store.transaction((tx) => {
      const r = this.#mustGet(tx, input.ca, input.serial);
      if (r.status !== 'hold') throw new YinxinError('conflict', `certificate ${r.serial} of CA ${r.ca} is not suspended (status ${r.status})`, { ca: r.ca, serial: r.serial, status: r.status });
      const next: CertificateRecord = { ...r, status: 'good' };
      delete next.reason;
      delete next.revokedAt;
      this.#setStatus(tx, r, next, now);
      this.#audit.append(tx, { actor: actor.actor, action: 'certificate.release', object: `cert:${r.ca}/${r.serial}`, outcome: 'success', requestId: actor.requestId });
      return next;
    });
  }

  /** Revoked and suspended certificates of a CA (for CRLs), from the status index. */
  *unusable(ca: string): Iterable<CertificateRecord> {
    for (const status of ['revoked', 'hold'] as const) {
      for (const { key } of this.index.status.range({ start: [status, ca, ''], end: [status, ca, MAX] })) {
        const r = this.certificates.get([ca, (key as string[])[2]]);
        if (r) yield r;
      }
    }
  }

  /** Certificates of a CA whose status changed at or after `since` (for delta CRLs). */
  *changedSince(ca: string, since: Date): Iterable<CertificateRecord> {
    const seen = new Set<string>();
    for (const { key } of this.statusChanges.range({ start: [ca, since.toISOString()], end: [ca, MAX] })) {
      const serial = (key as string[])[2];
      if (seen.has(serial)) continue;
      seen.add(serial);
      const r = this.certificates.get([ca, serial]);
      if (r) yield r;
    }
  }

  /** Search through the most selective index the query allows, then filter (first page). */
  search(q: SearchQuery): CertificateRecord[] {
    return this.searchPage(q).items;
  }

  /** One page of a search; `cursor` is the `next` of the previous page. */
  searchPage(q: SearchQuery, cursor?: string): Page<CertificateRecord> {
    const limit = Math.min(q.limit ?? 100, 1000);
    const viaIndex = (table: Table<1>, name: string, range: { start: Key; end: Key }) =>
      pageOf(table, name, range, cursor, limit, (key) => {
        const k = key as string[];
        const r = this.certificates.get([k[1], k[2]]);
        return r && matches(r, q) ? r : undefined;
      });
    const exact = (v: string) => ({ start: [v, ''], end: [v, MAX] });
    if (q.identifier !== undefined) return viaIndex(this.index.identifier, 'identifier', exact(q.identifier));
    if (q.subject !== undefined) return viaIndex(this.index.subject, 'subject', { start: [q.subject.toLowerCase()], end: [q.subject.toLowerCase() + MAX] });
    if (q.organization !== undefined) return viaIndex(this.index.organization, 'organization', exact(q.organization));
    if (q.status !== undefined) return viaIndex(this.index.status, 'status', exact(q.status));
    if (q.expiresBefore !== undefined || q.expiresAfter !== undefined) {
      return viaIndex(this.index.expiry, 'expiry', { start: [q.expiresAfter?.toISOString() ?? ''], end: [q.expiresBefore?.toISOString() ?? MAX] });
    }
    return pageOf(this.certificates, 'certificates', q.ca ? { start: [q.ca, ''], end: [q.ca, MAX] } : {}, cursor, limit,
      (_key, r) => (matches(r, q) ? r : undefined));
  }

  /** A certificate for download: DER, PEM, or PEM chain (the certificate, then its CAs up to the root). */
  download(ca: string, serial: string, format: 'der' | 'pem' | 'chain'): { contentType: string; body: Uint8Array | string } {
    this.#get(ca);
    const r = this.get(ca, normalizeSerial(serial));
    if (!r) throw new YinxinError('not-found', `CA "${ca}" has issued no certificate with serial ${serial}`, { ca, serial });
    if (format === 'der') return { contentType: 'application/pkix-cert', body: r.der };
    if (format === 'pem') return { contentType: 'application/x-pem-file', body: toPem(r.der, 'CERTIFICATE') };
    return { contentType: 'application/x-pem-file', body: [r.der, ...this.caChain(ca)].map((d) => toPem(d, 'CERTIFICATE')).join('') };
  }
}

function matches(r: CertificateRecord, q: SearchQuery): boolean {
  if (q.ca !== undefined && r.ca !== q.ca) return false;
  if (q.identifier !== undefined && r.identifier !== q.identifier) return false;
  if (q.organization !== undefined && r.organization !== q.organization) return false;
  if (q.status !== undefined && r.status !== q.status) return false;
  if (q.profile !== undefined && r.profile !== q.profile) return false;
  if (q.subject !== undefined && !(r.subjectAttributes.find((a) => a.type === 'CN')?.value.toLowerCase().startsWith(q.subject.toLowerCase()))) return false;
  if (q.expiresBefore !== undefined && !(r.notAfter < q.expiresBefore.toISOString())) return false;
  if (q.expiresAfter !== undefined && !(r.notAfter >= q.expiresAfter.toISOString())) return false;
  return true;
}

export function normalizeSerial(serial: string): string {
  const s = serial.replace(/:/g, '').toLowerCase();
  if (!/^[0-9a-f]{2,40}$/.test(s) || s.length % 2) throw new YinxinError('validation-failed', `"${serial}" is not a hexadecimal serial number`, { field: 'serial' });
  return s;
}
