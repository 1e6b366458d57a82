/**
 * The attribute authority (RFC 5755): an AC issuer whose key lives in the HSM (`aa/<name>`) and
 * whose certificate comes from the root CA (an end-entity certificate: RFC 5755 s4.5 forbids an
 * AC issuer from being a CA; keyUsage digitalSignature for ACs and cRLSign for its ACRL). It issues
 * AttributeCertificateV2 to a civil servant, bound to their signing certificate (Holder
 * baseCertificateID = that certificate's issuer and serial), carrying roles, clearance, position
 * and department. Requests go through the RA workflow: submitted by one officer, approved (and
 * thereby issued) by a different one. Revocations are written to a status-change table the OCSP
 * responder polls, and an attribute certificate revocation list is published (encodeCrl, with an
 * issuingDistributionPoint onlyContainsAttributeCerts, RFC 5280 s5.2.5).
 *
 * Storage:
 *   ca.attribute-authorities      name -> AttributeAuthorityRecord
 *   ca.attribute-certificates     [aa, serialHex] -> AttributeCertificateRecord
 *   ca.attribute-requests         id -> AttributeRequestRecord
 *   ca.attribute-status-changes   [aa, ISO time, serialHex] -> status
 *   ca.attribute-crls             aa -> PublishedAcrl;  [aa, 'counter'] -> { next }
 */
import { randomUUID } from 'node:crypto';
import type { AuditLog } from '../audit/types.ts';
import type { Clock } from '../common/clock.ts';
import { YinxinError } from '../common/errors.ts';
import { defaultScheme, describeKeySpec } from '../hsm/algorithms.ts';
import type { KeySpec, KeyStore, SignatureScheme, Signer } from '../hsm/signer.ts';
import type { Store, Table } from '../store/store.ts';
import { signAttributeCertificate, clearanceLevels, type ClearanceLevel } from './attribute-certificate.ts';
import { normalizeSerial, personOf, randomSerial, revocationReasons, type Actor, type AuthorityRecord, type CertificateAuthority, type CertificateRecord } from './authority.ts';
import { CertificateTemplate } from './certificate.ts';
import { encodeCrl } from './crl.ts';
import { readSubjectPublicKey } from './keys.ts';
import { distributionUrls, type Subject } from './profiles.ts';
import { checkSubjectValues, encodeName, formatSubject } from './subject.ts';

/** An attribute authority is kept like a CA (its key, name and certificate), always under a parent CA. */
export interface AttributeAuthorityRecord extends Omit<AuthorityRecord, 'parent'> {
  /** The CA that certified the AA's key. */
  parent: string;
}

export type AttributeCertificateStatus = 'good' | 'revoked';

export interface AttributeCertificateRecord {
  aa: string;
  serial: string;
  holder: { ca: string; serial: string; subject: string };
  roles: string[];
  clearance?: ClearanceLevel;
  position?: string;
  department?: string;
  noRevAvail: boolean;
  notBefore: string;
  notAfter: string;
  issuedAt: string;
  status: AttributeCertificateStatus;
  revokedAt?: string;
  reason?: number;
  requestId?: string;
  der: Uint8Array;
}

export interface AttributeCertificateInput {
  /** Defaults to the only (or first) attribute authority. */
  aa?: string;
  /** The holder's signing certificate. */
  holder: { ca: string; serial: string };
  roles: string[];
  clearance?: ClearanceLevel;
  position?: string;
  department?: string;
  /** Days of validity (default 365; never beyond the holder's certificate nor the AA's). */
  validityDays?: number;
  /** RFC 5755 s4.3.6: no revocation information will be available. */
  noRevAvail?: boolean;
}

export interface AttributeRequestRecord {
  id: string;
  input: AttributeCertificateInput & { aa: string };
  requester: string;
  createdAt: string;
  status: 'pending' | 'issued' | 'rejected';
  approvedBy?: string;
  rejection?: { officer: string; at: string; reason: string };
  issued?: { aa: string; serial: string };
}

export interface PublishedAcrl {
  aa: string;
  number: string;
  thisUpdate: string;
  nextUpdate: string;
  entries: number;
  der: Uint8Array;
}

export interface AttributeAuthorityDefinition {
  name: string;
  subject: Subject;
  spec: KeySpec;
  validityDays: number;
  /** The CA certifying it (default 'root'). */
  parent?: string;
}

export const defaultAttributeAuthority: AttributeAuthorityDefinition = {
  name: 'aa',
  subject: [{ type: 'C', value: 'CN' }, { type: 'O', value: 'yinxin' }, { type: 'CN', value: 'yinxin Attribute Authority' }],
  spec: { type: 'ec', curve: 'P-256' },
  validityDays: 5 * 365,
};

export interface AttributeAuthorityDeps {
  store: Store;
  keys: KeyStore;
  audit: AuditLog;
  clock: Clock;
  authority: CertificateAuthority;
  /** The appliance's public base URL (ACRL and OCSP pointers). */
  baseUrl: string;
  options?: {
    /** Policy OID of the clearance attribute (RFC 5755 s4.4.6); default under yinxin's 2.25 arc. */
    clearancePolicyOid?: string;
    /** ACRL nextUpdate - thisUpdate (default 24 h). */
    crlValidityMs?: number;
    /** Profiles a holder certificate may have (default civil-servant-signing). */
    holderProfiles?: string[];
  };
}

export const ATTRIBUTE_TABLES = {
  authorities: 'ca.attribute-authorities',
  certificates: 'ca.attribute-certificates',
  requests: 'ca.attribute-requests',
  statusChanges: 'ca.attribute-status-changes',
  crls: 'ca.attribute-crls',
} as const;

const DEFAULT_CLEARANCE_POLICY = '2.25.238463219418230195361806478227375470041.7';
const DAY = 86_400_000;
const MAX = '\uffff';

function hex(u: Uint8Array): string {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString('hex');
}

function wholeSeconds(d: Date): Date {
  return new Date(Math.floor(d.getTime() / 1000) * 1000);
}

function invalid(message: string, field: string): YinxinError {
  return new YinxinError('validation-failed', message, { field });
}

function checkText(value: string | undefined, field: string, max: number): void {
  if (value === undefined) return;
  if (typeof value !== 'string' || value.trim() === '' || value !== value.trim()) throw invalid(`${field} must be a non-empty string without surrounding spaces`, field);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f\u2028\u2029\ufffd]/.test(value)) throw invalid(`${field} contains a control character`, field);
  if ([...value].length > max) throw invalid(`${field} is longer than ${max} characters`, field);
}

export class AttributeAuthority {
  readonly #store: Store;
  readonly #keys: KeyStore;
  readonly #audit: AuditLog;
  readonly #clock: Clock;
  readonly #ca: CertificateAuthority;
  readonly #baseUrl: string;
  readonly #clearancePolicy: string;
  readonly #crlValidityMs: number;
  readonly #holderProfiles: string[];
  readonly #signers = new Map<string, Signer>();
  readonly authorities: Table<AttributeAuthorityRecord>;
  readonly certificates: Table<AttributeCertificateRecord>;
  readonly requests: Table<AttributeRequestRecord>;
  readonly statusChanges: Table<AttributeCertificateStatus>;
  readonly crls: Table<PublishedAcrl | { next: string }>;

  private constructor(deps: AttributeAuthorityDeps) {
    this.#store = deps.store;
    this.#keys = deps.keys;
    this.#audit = deps.audit;
    this.#clock = deps.clock;
    this.#ca = deps.authority;
    this.#baseUrl = deps.baseUrl.replace(/\/+$/, '');
    this.#clearancePolicy = deps.options?.clearancePolicyOid ?? DEFAULT_CLEARANCE_POLICY;
    this.#crlValidityMs = deps.options?.crlValidityMs ?? 24 * 3600_000;
    this.#holderProfiles = deps.options?.holderProfiles ?? ['civil-servant-signing'];
    this.authorities = deps.store.table(ATTRIBUTE_TABLES.authorities);
    this.certificates = deps.store.table(ATTRIBUTE_TABLES.certificates);
    this.requests = deps.store.table(ATTRIBUTE_TABLES.requests);
    this.statusChanges = deps.store.table(ATTRIBUTE_TABLES.statusChanges);
    this.crls = deps.store.table(ATTRIBUTE_TABLES.crls);
  }

  static async open(deps: AttributeAuthorityDeps): Promise<AttributeAuthority> {
    const aa = new AttributeAuthority(deps);
    for (const { value } of aa.authorities.range()) aa.#signers.set(value.name, await deps.keys.getSigner(value.keyLabel));
    return aa;
  }

  /** First start: creates the attribute authority unless it exists. Idempotent. */
  async initialize(def: AttributeAuthorityDefinition = defaultAttributeAuthority, actor: Actor = { actor: 'system' }): Promise<AttributeAuthorityRecord> {
    return this.authorities.get(def.name) ?? this.create(def, actor);
  }

  /** Creates an AA: key in the HSM, certificate from `def.parent` (default root), ACRL published. */
  async create(def: AttributeAuthorityDefinition, actor: Actor): Promise<AttributeAuthorityRecord> {
    if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(def.name)) throw invalid(`attribute authority name "${def.name}" must be lower-case letters, digits and hyphens`, 'name');
    if (this.authorities.has(def.name) || this.#ca.listAuthorities().some((a) => a.name === def.name)) {
      throw new YinxinError('conflict', `the name "${def.name}" is already used by a CA or an attribute authority`, { name: def.name });
    }
    const parentName = def.parent ?? 'root';
    const parent = this.#ca.getAuthority(parentName);
    const issuer = this.#ca.issuerOf(parentName);
    const subject = checkSubjectValues(def.subject);
    const now = wholeSeconds(this.#clock.now());
    const keyLabel = `aa/${def.name}`;
    if (await this.#keys.hasKey(keyLabel)) await this.#keys.deleteKey(keyLabel);
    const signer = await this.#keys.generateKeyPair(keyLabel, def.spec);
    const spki = readSubjectPublicKey(signer.publicKeyInfo);
    const nameDer = encodeName(subject);
    const template = new CertificateTemplate({ nameDer: issuer.nameDer, keyIdentifier: issuer.keyIdentifier, signer: issuer.signer, scheme: parent.scheme }, {
      basicConstraints: { ca: false },
      keyUsage: ['digitalSignature', 'cRLSign'],
      extendedKeyUsage: null,
      policies: [],
      urls: distributionUrls(this.#baseUrl, parentName),
      ocspNoCheck: false,
    });
    let notAfter = new Date(now.getTime() + def.validityDays * DAY);
    if (notAfter > new Date(parent.notAfter)) notAfter = new Date(parent.notAfter);
    const serial = randomSerial();
    const der = await template.issue({ serial, notBefore: now, notAfter, subjectDer: nameDer, publicKeyInfo: signer.publicKeyInfo, subjectKeyIdentifier: spki.keyIdentifier });
    const record: AttributeAuthorityRecord = {
      name: def.name, parent: parentName, keyLabel, spec: def.spec, scheme: defaultScheme(def.spec), subject, nameDer,
      keyIdentifier: spki.keyIdentifier, certificate: der, serial: hex(serial),
      notBefore: now.toISOString(), notAfter: notAfter.toISOString(), createdAt: now.toISOString(),
    };
    const certRecord: CertificateRecord = {
      ca: parentName, serial: record.serial, profile: 'attribute-authority', subject: formatSubject(subject), subjectAttributes: subject,
      key: describeKeySpec(def.spec), keyIdentifier: hex(spki.keyIdentifier), notBefore: record.notBefore, notAfter: record.notAfter,
      issuedAt: record.createdAt, status: 'good', der,
    };
    const organization = subject.find((a) => a.type === 'O')?.value;
    if (organization !== undefined) certRecord.organization = organization;
    await this.#store.transaction((tx) => {
      if (tx.get(this.authorities, def.name)) throw new YinxinError('conflict', `attribute authority "${def.name}" already exists`, { name: def.name });
      tx.put(this.authorities, def.name, record);
      // The AA's certificate is one of the parent's certificates: listed, revocable, answered by OCSP.
      this.#ca.commit(tx, { record: certRecord }, actor);
      this.#audit.append(tx, {
        actor: actor.actor, action: 'aa.create', object: `aa:${def.name}`, outcome: 'success', requestId: actor.requestId,
        details: { parent: parentName, key: describeKeySpec(def.spec), serial: record.serial, notAfter: record.notAfter },
      });
    });
    this.#signers.set(def.name, signer);
    await this.publishCrl(def.name);
    return record;
  }

  listAuthorities(): AttributeAuthorityRecord[] {
    return [...this.authorities.range()].map((e) => e.value);
  }

  getAuthority(name?: string): AttributeAuthorityRecord {
    const record = name === undefined ? this.listAuthorities()[0] : this.authorities.get(name);
    if (!record) throw new YinxinError('unknown-issuer', name === undefined ? 'no attribute authority has been created' : `no attribute authority named "${name}"`, { aa: name });
    return record;
  }

  /** URLs of an AA's revocation information: its ACRL and the OCSP responder. */
  urls(aa: string): { crl: string; ocsp: string } {
    const u = distributionUrls(this.#baseUrl, aa);
    return { crl: u.crl, ocsp: u.ocsp };
  }

  /** Checks an issuance request without storing anything; returns it with the AA filled in. */
  #check(input: AttributeCertificateInput): AttributeCertificateInput & { aa: string } {
    const aa = this.getAuthority(input.aa).name;
    if (!input.holder || typeof input.holder.ca !== 'string' || typeof input.holder.serial !== 'string') throw invalid('the holder certificate (ca, serial) is required', 'holder');
    const serial = normalizeSerial(input.holder.serial);
    const holder = this.#ca.get(input.holder.ca, serial);
    if (!holder) throw new YinxinError('not-found', `CA "${input.holder.ca}" has issued no certificate with serial ${serial}`, { ca: input.holder.ca, serial });
    if (!this.#holderProfiles.includes(holder.profile)) {
      throw new YinxinError('policy-violation', `the holder certificate has profile ${holder.profile}; an attribute certificate is bound to a ${this.#holderProfiles.join(' or ')} certificate`, { field: 'holder' });
    }
    if (holder.status !== 'good') throw new YinxinError('policy-violation', `the holder certificate is ${holder.status}`, { field: 'holder' });
    if (!Array.isArray(input.roles) || input.roles.length > 16) throw invalid('roles must be a list of at most 16 role names', 'roles');
    input.roles.forEach((r, i) => checkText(r, `roles[${i}]`, 64));
    if (new Set(input.roles).size !== input.roles.length) throw invalid('a role is listed twice', 'roles');
    if (input.clearance !== undefined && !Object.hasOwn(clearanceLevels, input.clearance)) {
      throw invalid(`clearance must be one of ${Object.keys(clearanceLevels).join(', ')}`, 'clearance');
    }
    checkText(input.position, 'position', 128);
    checkText(input.department, 'department', 128);
    if (input.roles.length === 0 && !input.clearance && !input.position && !input.department) throw invalid('an attribute certificate must carry at least one attribute', 'roles');
    if (input.validityDays !== undefined && !(Number.isInteger(input.validityDays) && input.validityDays >= 1 && input.validityDays <= 3650)) {
      throw invalid('validityDays must be a whole number of days from 1 to 3650', 'validityDays');
    }
    const out: AttributeCertificateInput & { aa: string } = { aa, holder: { ca: input.holder.ca, serial }, roles: [...input.roles] };
    if (input.clearance !== undefined) out.clearance = input.clearance;
    if (input.position !== undefined) out.position = input.position;
    if (input.department !== undefined) out.department = input.department;
    if (input.validityDays !== undefined) out.validityDays = input.validityDays;
    if (input.noRevAvail) out.noRevAvail = true;
    return out;
  }

  /** RA workflow, step 1: an officer asks for an attribute certificate. Bad input stores nothing. */
  async submit(input: AttributeCertificateInput, actor: Actor): Promise<AttributeRequestRecord> {
    const checked = this.#check(input);
    const record: AttributeRequestRecord = { id: `acreq-${randomUUID()}`, input: checked, requester: personOf(actor), createdAt: this.#clock.now().toISOString(), status: 'pending' };
    await this.#store.transaction((tx) => {
      tx.put(this.requests, record.id, record);
      this.#audit.append(tx, {
        actor: actor.actor, action: 'attribute-certificate.request', object: `acrequest:${record.id}`, outcome: 'success', requestId: actor.requestId,
        details: { aa: checked.aa, holder: `${checked.holder.ca}/${checked.holder.serial}`, roles: checked.roles },
      });
    });
    return record;
  }

  getRequest(id: string): AttributeRequestRecord {
    const r = this.requests.get(id);
    if (!r) throw new YinxinError('not-found', `no attribute certificate request with id ${id}`, { request: id });
    return r;
  }

  listRequests(filter: { status?: AttributeRequestRecord['status']; limit?: number } = {}): AttributeRequestRecord[] {
    const out: AttributeRequestRecord[] = [];
    for (const { value } of this.requests.range()) {
      if (filter.status && value.status !== filter.status) continue;
      out.push(value);
      if (out.length >= Math.min(filter.limit ?? 100, 1000)) break;
    }
    return out;
  }

  /** RA workflow, step 2: a different officer approves, which issues the attribute certificate. */
  async approve(id: string, actor: Actor): Promise<{ request: AttributeRequestRecord; certificate: AttributeCertificateRecord }> {
    const before = this.getRequest(id);
    const checkApprovable = (r: AttributeRequestRecord) => {
      if (r.status !== 'pending') throw new YinxinError('conflict', `request ${id} is ${r.status}, not pending`, { request: id, status: r.status });
      if (r.requester === personOf(actor)) throw new YinxinError('separation-of-duties', `${personOf(actor)} submitted request ${id} and may not approve it`, { request: id });
    };
    checkApprovable(before);
    const input = this.#check(before.input);
    const certificate = await this.#prepare(input, id);
    return this.#store.transaction((tx) => {
      const current = tx.get(this.requests, id);
      if (!current) throw new YinxinError('not-found', `no attribute certificate request with id ${id}`, { request: id });
      checkApprovable(current);
      const holder = tx.get(this.#ca.certificates, [input.holder.ca, input.holder.serial]);
      if (holder?.status !== 'good') throw new YinxinError('policy-violation', 'the holder certificate was revoked while the request waited', { field: 'holder' });
      if (tx.get(this.certificates, [certificate.aa, certificate.serial])) throw new YinxinError('conflict', `serial ${certificate.serial} is already in use`, { serial: certificate.serial });
      tx.put(this.certificates, [certificate.aa, certificate.serial], certificate);
      const next: AttributeRequestRecord = { ...current, status: 'issued', approvedBy: personOf(actor), issued: { aa: certificate.aa, serial: certificate.serial } };
      tx.put(this.requests, id, next);
      this.#audit.append(tx, {
        actor: actor.actor, action: 'attribute-certificate.issue', object: `ac:${certificate.aa}/${certificate.serial}`, outcome: 'success', requestId: actor.requestId,
        details: { request: id, holder: `${certificate.holder.ca}/${certificate.holder.serial}`, roles: certificate.roles, notAfter: certificate.notAfter },
      });
      return { request: next, certificate };
    });
  }

  async reject(id: string, reason: string, actor: Actor): Promise<AttributeRequestRecord> {
    const at = this.#clock.now().toISOString();
    return this.#store.transaction((tx) => {
      const current = tx.get(this.requests, id);
      if (!current) throw new YinxinError('not-found', `no attribute certificate request with id ${id}`, { request: id });
      if (current.status !== 'pending') throw new YinxinError('conflict', `request ${id} is ${current.status}, not pending`, { request: id, status: current.status });
      const next: AttributeRequestRecord = { ...current, status: 'rejected', rejection: { officer: personOf(actor), at, reason } };
      tx.put(this.requests, id, next);
      this.#audit.append(tx, { actor: actor.actor, action: 'attribute-certificate.reject', object: `acrequest:${id}`, outcome: 'success', requestId: actor.requestId, details: { reason } });
      return next;
    });
  }

  /** Builds and signs (one HSM call) the attribute certificate for a checked request. */
  async #prepare(input: AttributeCertificateInput & { aa: string }, requestId: string): Promise<AttributeCertificateRecord> {
    const aa = this.getAuthority(input.aa);
    const signer = this.#signers.get(aa.name) ?? await this.#keys.getSigner(aa.keyLabel);
    const holder = this.#ca.get(input.holder.ca, input.holder.serial)!;
    const holderIssuer = this.#ca.getAuthority(holder.ca);
    const now = wholeSeconds(this.#clock.now());
    let notAfter = new Date(now.getTime() + (input.validityDays ?? 365) * DAY);
    for (const limit of [holder.notAfter, aa.notAfter]) if (notAfter > new Date(limit)) notAfter = new Date(limit);
    if (notAfter <= now) throw new YinxinError('ca-expired', 'the holder certificate or the attribute authority has expired', { aa: aa.name });
    const serial = randomSerial();
    const der = await signAttributeCertificate({
      serial,
      holder: { issuerNameDer: holderIssuer.nameDer, serial: new Uint8Array(Buffer.from(holder.serial, 'hex')) },
      issuerNameDer: aa.nameDer,
      notBefore: now,
      notAfter,
      roles: input.roles,
      ...(input.clearance ? { clearance: { policyId: this.#clearancePolicy, level: input.clearance } } : {}),
      ...(input.position ? { position: input.position } : {}),
      ...(input.department ? { department: input.department } : {}),
      authorityKeyIdentifier: aa.keyIdentifier,
      urls: this.urls(aa.name),
      noRevAvail: input.noRevAvail === true,
    }, signer, aa.scheme);
    const record: AttributeCertificateRecord = {
      aa: aa.name, serial: hex(serial), holder: { ca: holder.ca, serial: holder.serial, subject: holder.subject }, roles: input.roles,
      noRevAvail: input.noRevAvail === true, notBefore: now.toISOString(), notAfter: notAfter.toISOString(), issuedAt: now.toISOString(),
      status: 'good', requestId, der,
    };
    if (input.clearance) record.clearance = input.clearance;
    if (input.position) record.position = input.position;
    if (input.department) record.department = input.department;
    return record;
  }

  get(aa: string, serial: string): AttributeCertificateRecord | undefined {
    return this.certificates.get([aa, normalizeSerial(serial)]);
  }

  /** Attribute certificates, newest last, optionally of one holder certificate or status. */
  list(filter: { aa?: string; holder?: { ca: string; serial: string }; status?: AttributeCertificateStatus; limit?: number } = {}): AttributeCertificateRecord[] {
    const limit = Math.min(filter.limit ?? 100, 1000);
    const out: AttributeCertificateRecord[] = [];
    const range = filter.aa ? { start: [filter.aa, ''], end: [filter.aa, MAX] } : {};
    const holderSerial = filter.holder ? normalizeSerial(filter.holder.serial) : undefined;
    for (const { value } of this.certificates.range(range)) {
      if (filter.status && value.status !== filter.status) continue;
      if (filter.holder && (value.holder.ca !== filter.holder.ca || value.holder.serial !== holderSerial)) continue;
      out.push(value);
      if (out.length >= limit) break;
    }
    return out;
  }

  /** Revokes (RFC 5280 reasons 0-5, 9 privilegeWithdrawn, 10 aACompromise), then re-publishes the ACRL. */
  async revoke(input: { aa?: string; serial: string; reason: number }, actor: Actor): Promise<AttributeCertificateRecord> {
    const aa = this.getAuthority(input.aa).name;
    const reason = input.reason;
    if (!Number.isInteger(reason) || reason < 0 || reason > 10 || reason === 7 || reason === revocationReasons.removeFromCRL || reason === revocationReasons.certificateHold) {
      throw invalid(`revocation reason ${reason} is not allowed (use 0-5, 9, 10)`, 'reason');
    }
    const serial = normalizeSerial(input.serial);
    const now = wholeSeconds(this.#clock.now());
    const next = await this.#store.transaction((tx) => {
      const r = tx.get(this.certificates, [aa, serial]);
      if (!r) throw new YinxinError('not-found', `attribute authority "${aa}" has issued no attribute certificate with serial ${serial}`, { aa, serial });
      if (r.status === 'revoked') throw new YinxinError('already-revoked', `attribute certificate ${serial} was already revoked at ${r.revokedAt}`, { aa, serial });
      const revoked: AttributeCertificateRecord = { ...r, status: 'revoked', revokedAt: now.toISOString(), reason };
      tx.put(this.certificates, [aa, serial], revoked);
      tx.put(this.statusChanges, [aa, now.toISOString(), serial], 'revoked');
      this.#audit.append(tx, { actor: actor.actor, action: 'attribute-certificate.revoke', object: `ac:${aa}/${serial}`, outcome: 'success', requestId: actor.requestId, details: { reason } });
      return revoked;
    });
    await this.publishCrl(aa);
    return next;
  }

  /** The current ACRL of an AA (GET /crl/{aa}.crl), or undefined before the first publication. */
  currentCrl(aa?: string): PublishedAcrl | undefined {
    return this.crls.get(this.getAuthority(aa).name) as PublishedAcrl | undefined;
  }

  /** Signs and stores a new attribute certificate revocation list (RFC 5755 s6, RFC 5280 s5). */
  async publishCrl(aaName?: string): Promise<PublishedAcrl> {
    const aa = this.getAuthority(aaName);
    const signer = this.#signers.get(aa.name) ?? await this.#keys.getSigner(aa.keyLabel);
    const counter = (this.crls.get([aa.name, 'counter']) as { next: string } | undefined)?.next ?? '1';
    const thisUpdate = wholeSeconds(this.#clock.now());
    const nextUpdate = new Date(thisUpdate.getTime() + this.#crlValidityMs);
    const entries: AttributeCertificateRecord[] = [];
    for (const { value } of this.certificates.range({ start: [aa.name, ''], end: [aa.name, MAX] })) if (value.status === 'revoked') entries.push(value);
    const der = await encodeCrl({
      issuerName: aa.nameDer, authorityKeyId: aa.keyIdentifier, signer, thisUpdate, nextUpdate, crlNumber: BigInt(counter),
      issuingDistributionPoint: { uri: this.urls(aa.name).crl, onlyContainsAttributeCerts: true },
      entries: entries.map((r) => ({ serial: new Uint8Array(Buffer.from(r.serial, 'hex')), revocationDate: new Date(r.revokedAt!), ...(r.reason ? { reason: r.reason } : {}) })),
    });
    const published: PublishedAcrl = { aa: aa.name, number: counter, thisUpdate: thisUpdate.toISOString(), nextUpdate: nextUpdate.toISOString(), entries: entries.length, der };
    await this.#store.transaction((tx) => {
      const now = (tx.get(this.crls, [aa.name, 'counter']) as { next: string } | undefined)?.next ?? '1';
      if (now !== counter) throw new YinxinError('conflict', `the ACRL number of ${aa.name} moved while publishing`, { aa: aa.name });
      tx.put(this.crls, aa.name, published);
      tx.put(this.crls, [aa.name, 'counter'], { next: (BigInt(counter) + 1n).toString() });
      this.#audit.append(tx, { actor: 'system', action: 'acrl.publish', object: `acrl:${aa.name}`, outcome: 'success', details: { number: counter, entries: entries.length } });
    });
    return published;
  }
}
