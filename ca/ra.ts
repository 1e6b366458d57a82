/**
 * The registration authority workflow: requests (a PKCS#10 CSR, or a key generated here on the
 * user's behalf), approval by one or two distinct RA officers (never the requester), rejection,
 * issuance, renewal (same key) and re-key, one-time PKCS#12 delivery, and key recovery for
 * archived encryption keys (two distinct officers). See docs/ca-key-archive.md.
 *
 * Storage:
 *   ca.requests      id -> CertificateRequestRecord
 *   ca.key-archive   [ca, serialHex] -> ArchivedKey (PKCS#8 sealed under the HSM key 'ca/key-archive')
 *   ca.pickups       [requestId, role] -> Pickup (PKCS#12 sealed under the same key; removed when collected)
 *   ca.recoveries    id -> KeyRecoveryRecord
 */
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import type { AuditLog } from '../audit/types.ts';
import { YinxinError } from '../common/errors.ts';
import { toArrayBuffer } from '../common/pem.ts';
import * as pkijs from 'pkijs';
import type { KeySpec, KeyStore } from '../hsm/signer.ts';
import type { Store, Table } from '../store/store.ts';
import { personOf, type Actor, type CertificateAuthority, type CertificateRecord, type PreparedCertificate } from './authority.ts';
import { parseCsr } from './csr.ts';
import { checkKeyAllowed, readSubjectPublicKey, type PublicKeyKind, type SubjectPublicKey } from './keys.ts';
import { getProfile, type Profile, type ProfileName, type Subject, type SubjectAltNames } from './profiles.ts';
import { checkSan, checkSubject, subjectFromRdn } from './subject.ts';

export const KEY_ARCHIVE_LABEL = 'ca/key-archive';

/** The agreed API of ca/pkcs12.ts, injected so the core can be tested without it. */
export type Pkcs12Builder = (input: { privateKeyPkcs8: Uint8Array; certificate: Uint8Array; chain: Uint8Array[]; password: string; friendlyName?: string }) => Uint8Array;

export type KeyRequest =
  | { source: 'csr'; publicKeyInfo: Uint8Array; /** As read and checked at submission (spares re-parsing at issuance). */ kind?: PublicKeyKind; keyIdentifier?: Uint8Array }
  | { source: 'generate'; spec: KeySpec };

export interface CertificateRequestRecord {
  id: string;
  kind: 'new' | 'renew' | 'rekey';
  ca: string;
  profile: ProfileName;
  requester: string;
  createdAt: string;
  subject: Subject;
  san?: SubjectAltNames;
  key: KeyRequest;
  /** Pair semantics: the encryption certificate issued together with a signing one. */
  encryption?: { profile: ProfileName; key: KeyRequest };
  status: 'pending' | 'issued' | 'rejected';
  approvals: Array<{ officer: string; at: string }>;
  rejection?: { officer: string; at: string; reason: string };
  issued?: { serial: string; encryptionSerial?: string };
  renewalOf?: { ca: string; serial: string };
}

export interface SubmitInput {
  ca: string;
  profile: string;
  /** A PKCS#10 request, DER or PEM; its signature is verified (proof of possession). */
  csr?: Uint8Array;
  /** Instead of a CSR: generate the key here on the user's behalf (profiles with keySource 'csr-or-generated'). */
  generateKey?: KeySpec;
  /** Defaults to the CSR's subject; required with generateKey. */
  subject?: Subject;
  /** Defaults to the CSR's requested subjectAltName. */
  san?: SubjectAltNames;
  /** For a signing profile with a pair partner: the encryption certificate's key. */
  encryption?: { csr?: Uint8Array; generateKey?: KeySpec };
}

export interface ApprovalResult {
  request: CertificateRequestRecord;
  /** Present once the last approval issued the certificate(s). */
  certificates?: CertificateRecord[];
  /**
   * When keys were generated here: the PKCS#12 files wait in ca.pickups for collectPkcs12(),
   * encrypted with this one-time password, which is returned here once and never stored.
   */
  oneTimePassword?: string;
}

export interface ArchivedKey {
  ca: string;
  serial: string;
  sealed: Uint8Array;
  archivedAt: string;
  requestId: string;
}

interface Pickup {
  sealed: Uint8Array;
  createdAt: string;
  ca: string;
  serial: string;
}

export interface KeyRecoveryRecord {
  id: string;
  ca: string;
  serial: string;
  requestedBy: string;
  reason: string;
  createdAt: string;
  status: 'pending' | 'completed';
  approvedBy?: string;
}

export interface RaDeps {
  store: Store;
  keys: KeyStore;
  audit: AuditLog;
  authority: CertificateAuthority;
  buildPkcs12: Pkcs12Builder;
}

function kindOfSpec(spec: KeySpec): PublicKeyKind {
  return spec.type === 'rsa' ? { type: 'rsa', bits: spec.bits } : spec.type === 'ec' ? { type: 'ec', curve: spec.curve } : { type: 'ed25519' };
}

function oneTimePassword(): string {
  // 20 characters from an unambiguous alphabet: ~100 bits.
  const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789';
  const bytes = randomBytes(40);
  let out = '';
  for (const b of bytes) {
    if (b >= 224) continue; // 224 = 4 * 56: keeps the choice uniform
    out += alphabet[b % alphabet.length];
    if (out.length === 20) break;
  }
  return out.length === 20 ? out : oneTimePassword();
}

function generateSoftwareKey(spec: KeySpec): { spki: Uint8Array; pkcs8: Uint8Array } {
  const pair = spec.type === 'ec' ? generateKeyPairSync('ec', { namedCurve: spec.curve })
    : spec.type === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: spec.bits })
    : generateKeyPairSync('ed25519');
  return {
    spki: new Uint8Array(pair.publicKey.export({ type: 'spki', format: 'der' })),
    pkcs8: new Uint8Array(pair.privateKey.export({ type: 'pkcs8', format: 'der' })),
  };
}

const aad = (ca: string, serial: string, what: string) => new Uint8Array(Buffer.from(`yinxin:${what}:${ca}/${serial}`, 'utf8'));

export class RegistrationAuthority {
  readonly #store: Store;
  readonly #keys: KeyStore;
  readonly #audit: AuditLog;
  readonly #ca: CertificateAuthority;
  readonly #buildPkcs12: Pkcs12Builder;
  readonly requests: Table<CertificateRequestRecord>;
  readonly keyArchive: Table<ArchivedKey>;
  readonly pickups: Table<Pickup>;
  readonly recoveries: Table<KeyRecoveryRecord>;

  private constructor(deps: RaDeps) {
    this.#store = deps.store;
    this.#keys = deps.keys;
    this.#audit = deps.audit;
    this.#ca = deps.authority;
    this.#buildPkcs12 = deps.buildPkcs12;
    this.requests = deps.store.table('ca.requests');
    this.keyArchive = deps.store.table('ca.key-archive');
    this.pickups = deps.store.table('ca.pickups');
    this.recoveries = deps.store.table('ca.recoveries');
  }

  static async open(deps: RaDeps): Promise<RegistrationAuthority> {
    await deps.keys.ensureSecretKey(KEY_ARCHIVE_LABEL);
    return new RegistrationAuthority(deps);
  }

  #now(): Date {
    return this.#ca.clock.now();
  }

  async #readKey(profile: Profile, csr: Uint8Array | undefined, generate: KeySpec | undefined): Promise<{ key: KeyRequest; parsed?: Awaited<ReturnType<typeof parseCsr>> }> {
    if ((csr === undefined) === (generate === undefined)) throw new YinxinError('bad-request', 'give either a CSR or a key specification to generate, not both or neither');
    if (generate) {
      if (profile.keySource !== 'csr-or-generated') throw new YinxinError('policy-violation', `profile ${profile.name} needs a CSR: the subject must generate their own key`, { profile: profile.name });
      checkKeyAllowed(profile, kindOfSpec(generate));
      return { key: { source: 'generate', spec: generate } };
    }
    const parsed = await parseCsr(csr!);
    const spki = readSubjectPublicKey(parsed.publicKeyInfo);
    checkKeyAllowed(profile, spki.kind);
    return { key: { source: 'csr', publicKeyInfo: parsed.publicKeyInfo, kind: spki.kind, keyIdentifier: spki.keyIdentifier }, parsed };
  }

  /** Checks everything a request says and stores it, pending approval. Bad input stores nothing. */
  async submit(input: SubmitInput, actor: Actor): Promise<CertificateRequestRecord> {
    const profile = getProfile(input.profile);
    if (profile.service) throw new YinxinError('policy-violation', `profile ${profile.name} is for the appliance's own keys and is not issued through the RA`, { profile: profile.name });
    if (profile.pair?.role === 'encryption') throw new YinxinError('policy-violation', `profile ${profile.name} is only issued as a pair with ${profile.pair.partner}: request that profile with an encryption key`, { profile: profile.name });
    const authority = this.#ca.getAuthority(input.ca);
    if (this.#now() >= new Date(authority.notAfter)) throw new YinxinError('ca-expired', `the certificate of CA "${input.ca}" expired at ${authority.notAfter}`, { ca: input.ca });

    const { key, parsed } = await this.#readKey(profile, input.csr, input.generateKey);
    let subject = input.subject ?? (parsed ? subjectFromRdn(parsed.subject) : undefined);
    if (!subject) throw new YinxinError('bad-request', 'a subject is required when the key is generated here');
    subject = checkSubject(profile, subject, this.#now());
    const san = checkSan(profile, input.san ?? (parsed ? { dns: parsed.sanDns, email: parsed.sanEmail } : undefined), subject);

    let encryption: CertificateRequestRecord['encryption'];
    if (input.encryption) {
      if (profile.pair?.role !== 'signing') throw new YinxinError('policy-violation', `profile ${profile.name} has no encryption pair`, { profile: profile.name });
      const encProfile = getProfile(profile.pair.partner);
      const enc = await this.#readKey(encProfile, input.encryption.csr, input.encryption.generateKey);
      checkSubject(encProfile, subject, this.#now());
      checkSan(encProfile, san, subject);
      if (enc.key.source === 'csr' && key.source === 'csr' && Buffer.compare(enc.key.publicKeyInfo, key.publicKeyInfo) === 0) {
        throw new YinxinError('policy-violation', 'the signing and encryption certificates must have different keys', { field: 'encryption' });
      }
      encryption = { profile: encProfile.name, key: enc.key };
    }
    return this.#store_request({ kind: 'new', ca: input.ca, profile: profile.name, subject, san, key, encryption }, actor);
  }

  async #store_request(fields: Pick<CertificateRequestRecord, 'kind' | 'ca' | 'profile' | 'subject' | 'san' | 'key' | 'encryption' | 'renewalOf'>, actor: Actor): Promise<CertificateRequestRecord> {
    const record: CertificateRequestRecord = {
      id: `req-${randomUUID()}`,
      ...fields,
      requester: personOf(actor),
      createdAt: this.#now().toISOString(),
      status: 'pending',
      approvals: [],
    };
    if (!record.san || Object.keys(record.san).length === 0) delete record.san;
    if (!record.encryption) delete record.encryption;
    if (!record.renewalOf) delete record.renewalOf;
    await this.#store.transaction((tx) => {
      tx.put(this.requests, record.id, record);
      this.#audit.append(tx, {
        actor: actor.actor, action: `certificate.request.${record.kind}`, object: `request:${record.id}`, outcome: 'success', requestId: actor.requestId,
        details: { ca: record.ca, profile: record.profile, keySource: record.key.source, ...(record.renewalOf ? { renewalOf: `${record.renewalOf.ca}/${record.renewalOf.serial}` } : {}) },
      });
    });
    return record;
  }

  getRequest(id: string): CertificateRequestRecord {
    const r = this.requests.get(id);
    if (!r) throw new YinxinError('not-found', `no certificate request with id ${id}`, { request: id });
    return r;
  }

  listRequests(filter: { status?: CertificateRequestRecord['status']; requester?: string; limit?: number } = {}): CertificateRequestRecord[] {
    const out: CertificateRequestRecord[] = [];
    for (const { value } of this.requests.range()) {
      if (filter.status && value.status !== filter.status) continue;
      if (filter.requester && value.requester !== filter.requester) continue;
      out.push(value);
      if (out.length >= (filter.limit ?? 100)) break;
    }
    return out;
  }

  #checkApprover(r: CertificateRequestRecord, officer: string): void {
    if (r.status !== 'pending') throw new YinxinError('conflict', `request ${r.id} is ${r.status}, not pending`, { request: r.id, status: r.status });
    if (officer === r.requester) throw new YinxinError('separation-of-duties', `${officer} submitted request ${r.id} and may not approve it`, { request: r.id });
    if (r.approvals.some((a) => a.officer === officer)) throw new YinxinError('conflict', `${officer} has already approved request ${r.id}; a different officer must`, { request: r.id, reason: 'duplicate-approval' });
  }

  /**
   * Records an officer's approval. The last approval the profile needs issues the certificate(s)
   * in the same transaction as the approval (compare-and-swap on the request's approvals).
   */
  async approve(id: string, actor: Actor): Promise<ApprovalResult> {
    const officer = personOf(actor);
    const before = this.getRequest(id);
    this.#checkApprover(before, officer);
    const profile = getProfile(before.profile);
    const at = this.#now().toISOString();
    const approvalsBefore = before.approvals.length;

    const stillPending = (tx: Parameters<Parameters<Store['transaction']>[0]>[0]) => {
      const current = tx.get(this.requests, id);
      if (!current) throw new YinxinError('not-found', `no certificate request with id ${id}`, { request: id });
      this.#checkApprover(current, officer);
      if (current.approvals.length !== approvalsBefore) throw new YinxinError('conflict', `request ${id} changed while it was being approved; try again`, { request: id });
      return current;
    };

    if (approvalsBefore + 1 < profile.approvers) {
      return this.#store.transaction((tx) => {
        const current = stillPending(tx);
        const next = { ...current, approvals: [...current.approvals, { officer, at }] };
        tx.put(this.requests, id, next);
        this.#audit.append(tx, { actor: actor.actor, action: 'certificate.approve', object: `request:${id}`, outcome: 'success', requestId: actor.requestId, details: { approvals: next.approvals.length, needed: profile.approvers } });
        return { request: next };
      });
    }

    // Last approval: generate keys (if any), build and sign, then store it all at once.
    const main = await this.#prepare(before, before.profile, before.key);
    const enc = before.encryption ? await this.#prepare(before, before.encryption.profile, before.encryption.key) : null;
    if (enc) {
      main.prepared.record.pairSerial = enc.prepared.record.serial;
      enc.prepared.record.pairSerial = main.prepared.record.serial;
    }
    const password = main.pkcs8 || enc?.pkcs8 ? oneTimePassword() : undefined;
    const chain = this.#ca.caChain(before.ca);
    const sealedPickups: Array<{ role: string; sealed: Uint8Array; serial: string }> = [];
    const archive: Array<{ serial: string; sealed: Uint8Array }> = [];
    for (const [role, part] of [['certificate', main], ['encryption', enc]] as const) {
      if (!part?.pkcs8) continue;
      const r = part.prepared.record;
      const p12 = this.#buildPkcs12({ privateKeyPkcs8: part.pkcs8, certificate: r.der, chain, password: password!, friendlyName: `${r.subject} (${r.profile})` });
      sealedPickups.push({ role, serial: r.serial, sealed: await this.#keys.encrypt(KEY_ARCHIVE_LABEL, p12, aad(r.ca, r.serial, 'pickup')) });
      if (getProfile(r.profile).archiveGeneratedKey) {
        archive.push({ serial: r.serial, sealed: await this.#keys.encrypt(KEY_ARCHIVE_LABEL, part.pkcs8, aad(r.ca, r.serial, 'archive')) });
      }
    }

    return this.#store.transaction((tx) => {
      const current = stillPending(tx);
      const certificates = [this.#ca.commit(tx, main.prepared, actor)];
      if (enc) certificates.push(this.#ca.commit(tx, enc.prepared, actor));
      for (const a of archive) tx.put(this.keyArchive, [before.ca, a.serial], { ca: before.ca, serial: a.serial, sealed: a.sealed, archivedAt: at, requestId: id });
      for (const p of sealedPickups) tx.put(this.pickups, [id, p.role], { sealed: p.sealed, createdAt: at, ca: before.ca, serial: p.serial });
      const next: CertificateRequestRecord = {
        ...current,
        approvals: [...current.approvals, { officer, at }],
        status: 'issued',
        issued: { serial: main.prepared.record.serial, ...(enc ? { encryptionSerial: enc.prepared.record.serial } : {}) },
      };
      tx.put(this.requests, id, next);
      this.#audit.append(tx, { actor: actor.actor, action: 'certificate.approve', object: `request:${id}`, outcome: 'success', requestId: actor.requestId, details: { approvals: next.approvals.length, needed: profile.approvers, issued: certificates.map((c) => c.serial) } });
      for (const a of archive) this.#audit.append(tx, { actor: actor.actor, action: 'key.archive', object: `cert:${before.ca}/${a.serial}`, outcome: 'success', requestId: actor.requestId });
      return { request: next, certificates, ...(password ? { oneTimePassword: password } : {}) };
    });
  }

  async #prepare(r: CertificateRequestRecord, profileName: string, key: KeyRequest): Promise<{ prepared: PreparedCertificate; pkcs8?: Uint8Array }> {
    let spki: Uint8Array;
    let pkcs8: Uint8Array | undefined;
    let checkedKey: SubjectPublicKey;
    if (key.source === 'generate') {
      ({ spki, pkcs8 } = generateSoftwareKey(key.spec));
      checkedKey = readSubjectPublicKey(spki);
    } else {
      spki = key.publicKeyInfo;
      checkedKey = key.kind && key.keyIdentifier ? { kind: key.kind, der: spki, keyIdentifier: key.keyIdentifier } : readSubjectPublicKey(spki);
    }
    const prepared = await this.#ca.prepare({ ca: r.ca, profile: profileName, subject: r.subject, san: r.san, publicKeyInfo: spki, requestId: r.id, checkedKey });
    return pkcs8 ? { prepared, pkcs8 } : { prepared };
  }

  async reject(id: string, reason: string, actor: Actor): Promise<CertificateRequestRecord> {
    const at = this.#now().toISOString();
    return this.#store.transaction((tx) => {
      const current = tx.get(this.requests, id);
      if (!current) throw new YinxinError('not-found', `no certificate request with id ${id}`, { request: id });
      if (current.status !== 'pending') throw new YinxinError('conflict', `request ${id} is ${current.status}, not pending`, { request: id, status: current.status });
      const next: CertificateRequestRecord = { ...current, status: 'rejected', rejection: { officer: personOf(actor), at, reason } };
      tx.put(this.requests, id, next);
      this.#audit.append(tx, { actor: actor.actor, action: 'certificate.reject', object: `request:${id}`, outcome: 'success', requestId: actor.requestId, details: { reason } });
      return next;
    });
  }

  /** The PKCS#12 of a key generated here, once: it is removed from the store as it is handed out. */
  async collectPkcs12(requestId: string, role: 'certificate' | 'encryption' | 'recovery', actor: Actor): Promise<Uint8Array> {
    const pickup = this.pickups.get([requestId, role]);
    if (!pickup) throw new YinxinError('not-found', `no PKCS#12 waiting for ${requestId} (${role}); it is delivered only once`, { request: requestId, role });
    const p12 = await this.#keys.decrypt(KEY_ARCHIVE_LABEL, pickup.sealed, aad(pickup.ca, pickup.serial, 'pickup'));
    await this.#store.transaction((tx) => {
      if (!tx.get(this.pickups, [requestId, role])) throw new YinxinError('not-found', `the PKCS#12 for ${requestId} (${role}) was just collected`, { request: requestId, role });
      tx.remove(this.pickups, [requestId, role]);
      this.#audit.append(tx, { actor: actor.actor, action: 'key.pkcs12-delivered', object: `cert:${pickup.ca}/${pickup.serial}`, outcome: 'success', requestId: actor.requestId, details: { request: requestId, role } });
    });
    return p12;
  }

  #certificateForRenewal(ca: string, serial: string): { cert: CertificateRecord; spki: Uint8Array } {
    const cert = this.#ca.get(ca, serial);
    if (!cert) throw new YinxinError('not-found', `CA "${ca}" has issued no certificate with serial ${serial}`, { ca, serial });
    if (cert.status === 'revoked') throw new YinxinError('already-revoked', `certificate ${serial} is revoked and cannot be renewed`, { ca, serial });
    const parsed = pkijs.Certificate.fromBER(toArrayBuffer(cert.der));
    const spki = new Uint8Array(parsed.subjectPublicKeyInfo.toSchema().toBER(false));
    return { cert, spki };
  }

  /** Renewal: same subject, same key, new validity and serial. Approved like a new request. */
  async renew(input: { ca: string; serial: string }, actor: Actor): Promise<CertificateRequestRecord> {
    const { cert, spki } = this.#certificateForRenewal(input.ca, input.serial);
    const profile = getProfile(cert.profile);
    if (profile.pair?.role === 'encryption' || profile.service) throw new YinxinError('policy-violation', `certificates of profile ${profile.name} are not renewed through the RA`, { profile: profile.name });
    checkKeyAllowed(profile, readSubjectPublicKey(spki).kind);
    return this.#store_request({ kind: 'renew', ca: cert.ca, profile: profile.name, subject: cert.subjectAttributes, san: cert.san, key: { source: 'csr', publicKeyInfo: spki }, renewalOf: { ca: cert.ca, serial: cert.serial } }, actor);
  }

  /** Re-key: same subject, a new key from a CSR (whose subject must match), new serial. */
  async rekey(input: { ca: string; serial: string; csr: Uint8Array }, actor: Actor): Promise<CertificateRequestRecord> {
    const { cert, spki } = this.#certificateForRenewal(input.ca, input.serial);
    const profile = getProfile(cert.profile);
    if (profile.pair?.role === 'encryption' || profile.service) throw new YinxinError('policy-violation', `certificates of profile ${profile.name} are not re-keyed through the RA`, { profile: profile.name });
    const { key, parsed } = await this.#readKey(profile, input.csr, undefined);
    if (key.source === 'csr' && Buffer.compare(key.publicKeyInfo, spki) === 0) throw new YinxinError('policy-violation', 're-key needs a new key; use renew to keep the same one', { field: 'csr' });
    const requested = checkSubject(profile, subjectFromRdn(parsed!.subject), this.#now());
    const same = JSON.stringify(requested) === JSON.stringify(cert.subjectAttributes);
    if (!same) throw new YinxinError('policy-violation', 'the CSR subject differs from the certificate being re-keyed', { field: 'subject' });
    return this.#store_request({ kind: 'rekey', ca: cert.ca, profile: profile.name, subject: cert.subjectAttributes, san: cert.san, key, renewalOf: { ca: cert.ca, serial: cert.serial } }, actor);
  }

  /** First of the two officers: asks to recover an archived encryption key. */
  async requestKeyRecovery(input: { ca: string; serial: string; reason: string }, actor: Actor): Promise<KeyRecoveryRecord> {
    if (!this.keyArchive.get([input.ca, input.serial])) throw new YinxinError('not-found', `no archived key for certificate ${input.serial} of CA ${input.ca}`, { ca: input.ca, serial: input.serial });
    const record: KeyRecoveryRecord = { id: `rec-${randomUUID()}`, ca: input.ca, serial: input.serial, requestedBy: personOf(actor), reason: input.reason, createdAt: this.#now().toISOString(), status: 'pending' };
    await this.#store.transaction((tx) => {
      tx.put(this.recoveries, record.id, record);
      this.#audit.append(tx, { actor: actor.actor, action: 'key.recovery-request', object: `cert:${input.ca}/${input.serial}`, outcome: 'success', requestId: actor.requestId, details: { recovery: record.id, reason: input.reason } });
    });
    return record;
  }

  /**
   * Second officer: approves the recovery. The archived key is decrypted in the HSM session and
   * handed out once as a PKCS#12 (collectPkcs12(recoveryId, 'recovery')) under a new one-time password.
   */
  async approveKeyRecovery(id: string, actor: Actor): Promise<{ recovery: KeyRecoveryRecord; oneTimePassword: string }> {
    const rec = this.recoveries.get(id);
    if (!rec) throw new YinxinError('not-found', `no key recovery with id ${id}`, { recovery: id });
    if (rec.status !== 'pending') throw new YinxinError('conflict', `key recovery ${id} is already ${rec.status}`, { recovery: id });
    if (rec.requestedBy === personOf(actor)) throw new YinxinError('separation-of-duties', `${personOf(actor)} asked for key recovery ${id}; a second officer must approve it`, { recovery: id });
    const archived = this.keyArchive.get([rec.ca, rec.serial]);
    const cert = this.#ca.get(rec.ca, rec.serial);
    if (!archived || !cert) throw new YinxinError('not-found', `no archived key for certificate ${rec.serial} of CA ${rec.ca}`, { ca: rec.ca, serial: rec.serial });
    const pkcs8 = await this.#keys.decrypt(KEY_ARCHIVE_LABEL, archived.sealed, aad(rec.ca, rec.serial, 'archive'));
    const password = oneTimePassword();
    const p12 = this.#buildPkcs12({ privateKeyPkcs8: pkcs8, certificate: cert.der, chain: this.#ca.caChain(rec.ca), password, friendlyName: `${cert.subject} (recovered)` });
    const sealed = await this.#keys.encrypt(KEY_ARCHIVE_LABEL, p12, aad(rec.ca, rec.serial, 'pickup'));
    const recovery = await this.#store.transaction((tx) => {
      const current = tx.get(this.recoveries, id);
      if (!current || current.status !== 'pending') throw new YinxinError('conflict', `key recovery ${id} is no longer pending`, { recovery: id });
      const next: KeyRecoveryRecord = { ...current, status: 'completed', approvedBy: personOf(actor) };
      tx.put(this.recoveries, id, next);
      tx.put(this.pickups, [id, 'recovery'], { sealed, createdAt: this.#now().toISOString(), ca: rec.ca, serial: rec.serial });
      this.#audit.append(tx, { actor: actor.actor, action: 'key.recover', object: `cert:${rec.ca}/${rec.serial}`, outcome: 'success', requestId: actor.requestId, details: { recovery: id, requestedBy: rec.requestedBy } });
      return next;
    });
    return { recovery, oneTimePassword: password };
  }
}

