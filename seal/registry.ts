/**
 * The seal registry: a seal belongs to an organization (its name and unified social credit code,
 * optionally its unit certificate), has a name, a kind and an image (uploaded JPEG or PNG, or the drawn
 * red seal), an HSM key 'seal/<id>' and a seal certificate from the CA's seal profile. Its status
 * follows the certificate (active, suspended = certificateHold, revoked, expired), so OCSP and
 * CRLs tell relying parties. A seal-admin requests a seal; a different person approves it, which
 * generates the key and issues the certificate. Who may use it: named operators, roles, or API
 * clients (token ids). Every use is audited (who, which document digest, when) and counted.
 *
 * Storage:
 *   seal.seals   id -> SealRecord
 *   seal.usage   [id, ISO time, seq] -> UsageRecord
 *   seal.stats   id -> SealStats
 * Every state change and its audit record are one store transaction.
 */
import { randomBytes } from 'node:crypto';
import type { AuditLog } from '../audit/types.ts';
import { personOf, revocationReasons, type Actor, type CertificateAuthority, type CertificateRecord } from '../ca/authority.ts';
import { validateSocialCreditCode } from '../ca/identifiers.ts';
import type { Subject } from '../ca/profiles.ts';
import type { Clock } from '../common/clock.ts';
import { isYinxinError, YinxinError } from '../common/errors.ts';
import type { KeySpec, KeyStore, Signer } from '../hsm/signer.ts';
import { InlineCommitter, type Committer } from '../store/committer.ts';
import type { Store, Table } from '../store/store.ts';
import { sealDigestCades } from './cades.ts';
import { digest, sealHash, type SealCredential, type TimeStamper } from './cms.ts';
import type { ValidationDataSource } from './ltv.ts';
import { jpegSize, sealPdf, type PadesLevel, type PadesResult, type SealImage, type SealPlacement } from './pades.ts';
import { pngInfo } from './png.ts';
import { auditedUse, recordedUse, sealUses, STATS_TABLE, USAGE_TABLE, type RecordedUse, type SealStats, type SealUse, type UsageRecord } from './usage.ts';

export type { SealStats, UsageRecord } from './usage.ts';

export const SEAL_KINDS = ['official', 'contract', 'finance', 'personal-name'] as const;
export type SealKind = (typeof SEAL_KINDS)[number];

export type SealState = 'pending' | 'active' | 'suspended' | 'revoked' | 'expired' | 'rejected';

export interface SealRecord {
  id: string;
  organization: string;
  /** Unified social credit code (GB 32100-2015), check digit verified. */
  creditCode: string;
  /** The organization's unit certificate, if it has one in this CA. */
  unitCertificate?: { ca: string; serial: string };
  name: string;
  kind: SealKind;
  /** Uploaded JPEG or PNG, base64; neither: the appliance draws the customary red seal. */
  imageJpeg?: string;
  imagePng?: string;
  keyLabel: string;
  keySpec: KeySpec;
  ca: string;
  certificateSerial?: string;
  /** Who may use it: operator user names, roles, API token ids. */
  users: string[];
  roles: string[];
  clients: string[];
  requestedBy: string;
  requestedByPerson: string;
  requestedAt: string;
  approvedBy?: string;
  approvedAt?: string;
  rejected?: { by: string; at: string; reason: string };
}

export interface SealView extends Omit<SealRecord, 'imageJpeg' | 'imagePng'> {
  state: SealState;
  hasImage: boolean;
  notAfter?: string;
}

export interface SealRequestInput {
  organization: string;
  creditCode: string;
  name: string;
  kind: SealKind;
  imageJpeg?: Uint8Array;
  /** 8-bit PNG, not interlaced (png.ts); alpha is kept. */
  imagePng?: Uint8Array;
  unitCertificate?: { ca: string; serial: string };
  users?: string[];
  roles?: string[];
  clients?: string[];
  ca?: string;
  keySpec?: KeySpec;
}

/** Who is asking to use a seal (an operator session or an API client). */
export interface SealUser {
  actor: string;
  username: string;
  roles: readonly string[];
  /** API token id when the caller is an API client. */
  clientId?: string;
}

export interface SealRegistryOptions {
  store: Store;
  keys: KeyStore;
  audit: AuditLog;
  clock: Clock;
  ca: CertificateAuthority;
  timeStamper: TimeStamper;
  /** The CA that issues seal certificates (default 'issuing'). */
  issuingCa?: string;
  /** OCSP responses and CRLs for B-LT seals (the appliance's responder core and CRL publisher). */
  validationData?: ValidationDataSource;
  /**
   * Where usage records are committed: default in this thread on `store` and `audit`; the
   * appliance passes the commit thread it shares with the TSA (store/commit-thread.ts), so a use
   * and its time-stamp token's record share one transaction.
   */
  committer?: Committer;
}

const MAX_IMAGE = 512 * 1024;
/**
 * How long a seal key's signer is reused before it is looked up in the key store again. A lookup is
 * two C_FindObjects and attribute reads (in SoftHSM2, half of a CAdES seal's time); a key destroyed
 * in the token stops being used within this time, as the key store's own session copies do.
 */
const SIGNER_REUSE_MS = 10_000;

function nameCheck(value: unknown, field: string, max = 64): string {
  if (typeof value !== 'string' || value.trim() === '' || [...value].length > max) {
    throw new YinxinError('validation-failed', `${field} must be 1..${max} characters`, { field });
  }
  return value.trim();
}

function list(value: unknown, field: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string' && v.length > 0 && v.length <= 128)) {
    throw new YinxinError('validation-failed', `${field} must be a list of names`, { field });
  }
  return [...new Set(value as string[])];
}

/** Images of shared seal records (Table.getShared), decoded from base64 once per record. */
const imagesOfShared = new WeakMap<Readonly<SealRecord>, SealImage>();

/** The uploaded image, or the drawn seal when there is none. */
function imageOfRecord(seal: Readonly<SealRecord>): SealImage {
  let image = imagesOfShared.get(seal);
  if (image) return image;
  if (seal.imageJpeg) image = { kind: 'jpeg', bytes: new Uint8Array(Buffer.from(seal.imageJpeg, 'base64')) };
  else if (seal.imagePng) image = { kind: 'png', bytes: new Uint8Array(Buffer.from(seal.imagePng, 'base64')) };
  else image = { kind: 'drawn', organization: seal.organization, sealName: seal.name };
  imagesOfShared.set(seal, image);
  return image;
}

export class SealRegistry {
  readonly #o: SealRegistryOptions;
  readonly seals: Table<SealRecord>;
  readonly usage: Table<UsageRecord>;
  readonly stats: Table<SealStats>;
  /** Signers by key label and until when (performance.now()) they are reused. */
  readonly #signers = new Map<string, { signer: Promise<Signer>; until: number }>();
  readonly #committer: Committer;

  constructor(options: SealRegistryOptions) {
    this.#o = options;
    this.seals = options.store.table('seal.seals');
    this.usage = options.store.table(USAGE_TABLE);
    this.stats = options.store.table(STATS_TABLE);
    this.#committer = options.committer ?? new InlineCommitter(options.store, options.audit);
  }

  /** A seal-admin asks for a seal; nothing is generated until a second officer approves. */
  async request(input: SealRequestInput, actor: Actor): Promise<SealView> {
    const organization = nameCheck(input.organization, 'organization');
    const name = nameCheck(input.name, 'name');
    if (!SEAL_KINDS.includes(input.kind)) throw new YinxinError('validation-failed', `kind must be one of ${SEAL_KINDS.join(', ')}`, { field: 'kind' });
    try {
      validateSocialCreditCode(input.creditCode);
    } catch (e) {
      throw new YinxinError('validation-failed', `creditCode: ${(e as Error).message}`, { field: 'creditCode' }, { cause: e });
    }
    if (input.imageJpeg && input.imagePng) throw new YinxinError('validation-failed', 'give one seal image, JPEG or PNG', { field: 'image' });
    const image = input.imageJpeg ?? input.imagePng;
    if (image && image.length > MAX_IMAGE) throw new YinxinError('payload-too-large', `the seal image is larger than ${MAX_IMAGE} bytes`);
    if (input.imageJpeg) jpegSize(input.imageJpeg);
    if (input.imagePng) pngInfo(input.imagePng);
    const ca = input.ca ?? this.#o.issuingCa ?? 'issuing';
    this.#o.ca.getAuthority(ca);
    if (input.unitCertificate) {
      const unit = this.#o.ca.get(input.unitCertificate.ca, input.unitCertificate.serial);
      if (!unit) throw new YinxinError('not-found', 'the unit certificate is not known to this CA', { field: 'unitCertificate' });
      if (unit.identifier !== input.creditCode) throw new YinxinError('validation-failed', 'the unit certificate belongs to another organization', { field: 'unitCertificate' });
    }
    const id = randomBytes(8).toString('hex');
    const record: SealRecord = {
      id, organization, creditCode: input.creditCode, name, kind: input.kind,
      keyLabel: `seal/${id}`, keySpec: input.keySpec ?? { type: 'ec', curve: 'P-256' }, ca,
      users: list(input.users, 'users'), roles: list(input.roles, 'roles'), clients: list(input.clients, 'clients'),
      requestedBy: actor.actor, requestedByPerson: personOf(actor), requestedAt: this.#o.clock.now().toISOString(),
    };
    if (input.imageJpeg) record.imageJpeg = Buffer.from(input.imageJpeg).toString('base64');
    if (input.imagePng) record.imagePng = Buffer.from(input.imagePng).toString('base64');
    if (input.unitCertificate) record.unitCertificate = input.unitCertificate;
    await this.#o.store.transaction((tx) => {
      tx.put(this.seals, id, record);
      this.#o.audit.append(tx, { actor: actor.actor, action: 'seal.request', object: `seal:${id}`, outcome: 'success', requestId: actor.requestId,
        details: { organization, name, kind: input.kind } });
    });
    return this.view(record);
  }

  /**
   * A second officer approves: the key pair is generated in the HSM, the seal certificate issued
   * (organization identity with its credit code, seal profile), and the seal becomes active, in one
   * transaction with the certificate and the audit record.
   */
  async approve(id: string, actor: Actor): Promise<SealView> {
    const seal = this.#mustGet(id);
    if (seal.approvedAt || seal.rejected) throw new YinxinError('conflict', `seal ${id} was already decided`, { id });
    if (personOf(actor) === seal.requestedByPerson) {
      throw new YinxinError('separation-of-duties', 'the seal must be approved by a different officer than the one who requested it');
    }
    const subject: Subject = [{ type: 'C', value: 'CN' }, { type: 'O', value: seal.organization }, { type: 'CN', value: seal.name }, { type: 'organizationIdentifier', value: seal.creditCode }];
    const signer = await this.#o.keys.generateKeyPair(seal.keyLabel, seal.keySpec);
    try {
      const prepared = await this.#o.ca.prepare({ ca: seal.ca, profile: 'seal', subject, publicKeyInfo: signer.publicKeyInfo });
      return await this.#o.store.transaction((tx) => {
        const current = tx.get(this.seals, id);
        if (!current || current.approvedAt || current.rejected) throw new YinxinError('conflict', `seal ${id} was already decided`, { id });
        const cert = this.#o.ca.commit(tx, prepared, actor);
        const next: SealRecord = { ...current, certificateSerial: cert.serial, approvedBy: actor.actor, approvedAt: this.#o.clock.now().toISOString() };
        tx.put(this.seals, id, next);
        this.#o.audit.append(tx, { actor: actor.actor, action: 'seal.approve', object: `seal:${id}`, outcome: 'success', requestId: actor.requestId,
          details: { certificate: `${cert.ca}/${cert.serial}` } });
        return this.view(next, cert);
      });
    } catch (e) {
      await this.#o.keys.deleteKey(seal.keyLabel).catch(() => undefined);
      throw e;
    }
  }

  async reject(id: string, reason: string, actor: Actor): Promise<SealView> {
    return this.#o.store.transaction((tx) => {
      const seal = tx.get(this.seals, id);
      if (!seal) throw new YinxinError('not-found', `no seal ${id}`, { id });
      if (seal.approvedAt || seal.rejected) throw new YinxinError('conflict', `seal ${id} was already decided`, { id });
      const next: SealRecord = { ...seal, rejected: { by: actor.actor, at: this.#o.clock.now().toISOString(), reason: String(reason ?? '').slice(0, 500) } };
      tx.put(this.seals, id, next);
      this.#o.audit.append(tx, { actor: actor.actor, action: 'seal.reject', object: `seal:${id}`, outcome: 'success', requestId: actor.requestId });
      return this.view(next);
    });
  }

  /** Who may use the seal (replaces the lists). */
  async setUsers(id: string, access: { users?: string[]; roles?: string[]; clients?: string[] }, actor: Actor): Promise<SealView> {
    const users = list(access.users, 'users');
    const roles = list(access.roles, 'roles');
    const clients = list(access.clients, 'clients');
    return this.#o.store.transaction((tx) => {
      const seal = tx.get(this.seals, id);
      if (!seal) throw new YinxinError('not-found', `no seal ${id}`, { id });
      const next = { ...seal, users, roles, clients };
      tx.put(this.seals, id, next);
      this.#o.audit.append(tx, { actor: actor.actor, action: 'seal.access', object: `seal:${id}`, outcome: 'success', requestId: actor.requestId, details: { users, roles, clients } });
      return this.view(next);
    });
  }

  /** Suspension, release and revocation go through the certificate (its CA audits them). */
  async suspend(id: string, actor: Actor): Promise<SealView> {
    const seal = this.#issued(id);
    await this.#o.ca.suspend({ ca: seal.ca, serial: seal.certificateSerial! }, actor);
    return this.get(id);
  }

  async resume(id: string, actor: Actor): Promise<SealView> {
    const seal = this.#issued(id);
    await this.#o.ca.release({ ca: seal.ca, serial: seal.certificateSerial! }, actor);
    return this.get(id);
  }

  async revoke(id: string, reason: number = revocationReasons.cessationOfOperation, actor: Actor): Promise<SealView> {
    const seal = this.#issued(id);
    await this.#o.ca.revoke({ ca: seal.ca, serial: seal.certificateSerial!, reason }, actor);
    return this.get(id);
  }

  get(id: string): SealView {
    return this.view(this.#mustGet(id));
  }

  list(filter: { organization?: string; state?: SealState } = {}): SealView[] {
    const out: SealView[] = [];
    for (const { value } of this.seals.range()) {
      if (filter.organization && value.organization !== filter.organization) continue;
      const v = this.view(value);
      if (filter.state && v.state !== filter.state) continue;
      out.push(v);
    }
    return out;
  }

  usageOf(id: string, limit = 100): { stats: SealStats; recent: UsageRecord[] } {
    this.#mustGet(id);
    const recent = [...this.usage.range({ start: [id, ''], end: [id, '\uffff'], reverse: true, limit })].map((e) => e.value);
    return { stats: this.stats.get(id) ?? { uses: 0, pdf: 0, file: 0 }, recent };
  }

  imageOf(id: string): SealImage {
    return imageOfRecord(this.#mustGet(id));
  }

  view(seal: Readonly<SealRecord>, cert?: Readonly<CertificateRecord>): SealView {
    const { imageJpeg, imagePng, ...rest } = seal;
    const c = cert ?? this.#certificateOf(seal);
    return { ...rest, state: this.#state(seal, c), hasImage: imageJpeg !== undefined || imagePng !== undefined, ...(c ? { notAfter: c.notAfter } : {}) };
  }

  #certificateOf(seal: Readonly<SealRecord>): Readonly<CertificateRecord> | undefined {
    return seal.certificateSerial ? this.#o.ca.getShared(seal.ca, seal.certificateSerial) : undefined;
  }

  #state(seal: Readonly<SealRecord>, cert: Readonly<CertificateRecord> | undefined): SealState {
    if (seal.rejected) return 'rejected';
    if (!cert) return 'pending';
    if (cert.status === 'revoked') return 'revoked';
    if (cert.status === 'hold') return 'suspended';
    const now = this.#o.clock.now().getTime();
    if (Date.parse(cert.notAfter) <= now || Date.parse(cert.notBefore) > now) return 'expired';
    return 'active';
  }

  /**
   * The seal's signing credential, if `user` may use it now. Throws 'forbidden' for a user not on
   * its lists, 'conflict' (details.state) for a seal that is not active.
   */
  async credential(id: string, user: SealUser): Promise<{ seal: Readonly<SealRecord>; credential: SealCredential }> {
    const seal = this.#mustGet(id);
    const allowed = (user.clientId !== undefined && seal.clients.includes(user.clientId))
      || (user.clientId === undefined && seal.users.includes(user.username))
      || user.roles.some((r) => seal.roles.includes(r));
    if (!allowed) throw new YinxinError('forbidden', `you may not use seal ${id}`, { seal: id });
    const cert = this.#certificateOf(seal);
    const state = this.#state(seal, cert);
    if (state !== 'active') throw new YinxinError('conflict', `seal ${id} is ${state}, not active`, { seal: id, state });
    const signer = await this.#signer(seal.keyLabel);
    return { seal, credential: { signer, certificate: cert!.der, chain: this.#o.ca.caChain(seal.ca) } };
  }

  #signer(label: string): Promise<Signer> {
    const now = performance.now();
    const known = this.#signers.get(label);
    if (known && known.until > now) return known.signer;
    const entry = { signer: this.#o.keys.getSigner(label), until: now + SIGNER_REUSE_MS };
    this.#signers.set(label, entry);
    entry.signer.catch(() => this.#forgetSigner(label, entry));
    return entry.signer;
  }

  /** After a failed seal the key is looked up again next time (it may have been destroyed or replaced). */
  #forgetSigner(label: string, entry = this.#signers.get(label)): void {
    if (entry && this.#signers.get(label) === entry) this.#signers.delete(label);
  }

  /** Seals a PDF (PAdES B-T, visible seal) and records the use. The sealed file is returned, never stored. */
  async sealPdf(id: string, user: SealUser, pdf: Uint8Array, options: { placement?: SealPlacement; level?: PadesLevel; reason?: string; location?: string; requestId?: string } = {}): Promise<PadesResult> {
    const { seal, credential } = await this.credential(id, user);
    return this.#recordingUse(seal, user, 'pdf', options.requestId, (recordUse) => sealPdf(pdf, {
      ...credential, timeStamper: this.#o.timeStamper, clock: this.#o.clock,
      image: imageOfRecord(seal),
      placement: options.placement, name: seal.name, reason: options.reason, location: options.location,
      level: options.level, validationData: this.#o.validationData,
      onSigned: ({ documentDigest, hash }) => recordUse(documentDigest, hash),
    }));
  }

  /** Seals any file (detached CAdES B-T) and records the use. */
  async sealFile(id: string, user: SealUser, content: Uint8Array, options: { requestId?: string } = {}): Promise<{ p7s: Uint8Array; documentDigest: string; hash: string }> {
    const { seal, credential } = await this.credential(id, user);
    const hash = sealHash(credential.signer);
    const contentDigest = digest(hash, [content]);
    const documentDigest = Buffer.from(contentDigest).toString('hex');
    const p7s = await this.#recordingUse(seal, user, 'file', options.requestId, (recordUse) => sealDigestCades(contentDigest, hash, {
      ...credential, timeStamper: this.#o.timeStamper, clock: this.#o.clock, onSigned: () => recordUse(documentDigest, hash),
    }));
    return { p7s, documentDigest, hash };
  }

  /**
   * Makes a seal with `make`, which calls `recordUse` once the HSM has signed, before it asks for
   * the time-stamp. The use and its audit record are committed while the TSA works, and with a
   * committer shared with the TSA (the appliance's) in the same transaction as the token's ledger
   * record: one after the other, a seal would wait for two durable commits (the TSA's ledger, then
   * its own). The seal is returned only once its use is durable. If the seal
   * fails after the use was recorded (the TSA, B-LT validation data), a second transaction marks
   * the use failed, takes it out of the counts and audits the failure; a crash in between leaves
   * the use recorded (the HSM did sign).
   */
  async #recordingUse<R>(seal: SealRecord, user: SealUser, kind: 'pdf' | 'file', requestId: string | undefined,
    make: (recordUse: (documentDigest: string, hash: string) => void) => Promise<R>): Promise<R> {
    let recording: Promise<RecordedUse> | undefined;
    const recordUse = (documentDigest: string, hash: string): void => {
      if (recording) throw new YinxinError('internal', 'a seal recorded its use twice');
      recording = this.#recordUse(seal, user, kind, documentDigest, hash, requestId);
      // Awaited below; until then a failure must not count as unhandled.
      recording.catch(() => undefined);
    };
    try {
      const result = await make(recordUse);
      if (!recording) throw new YinxinError('internal', 'a seal was made without recording its use');
      await recording;
      return result;
    } catch (e) {
      this.#forgetSigner(seal.keyLabel);
      const recorded = await recording?.catch(() => undefined);
      if (recorded) await this.#recordFailedUse(seal, user, recorded, e, requestId);
      throw e;
    }
  }

  /**
   * Records a use (usage row, counts, audit record: seal/usage.ts). The uses handed over in one
   * event-loop turn (concurrent seals whose signatures the key store returned together), and the
   * time-stamp token records the TSA is asked for in that turn, share one transaction.
   */
  async #recordUse(seal: SealRecord, user: SealUser, kind: 'pdf' | 'file', documentDigest: string, hash: string, requestId?: string): Promise<RecordedUse> {
    const use: SealUse = { seal: seal.id, requestId, actor: user.actor, kind, documentDigest, hash, time: this.#o.clock.now().toISOString() };
    return recordedUse(use, (await this.#committer.commit(sealUses, use)).result);
  }

  async #recordFailedUse(seal: SealRecord, user: SealUser, recorded: RecordedUse, error: unknown, requestId?: string): Promise<void> {
    const code = isYinxinError(error) ? error.code : 'internal';
    const { kind } = recorded.record;
    await this.#o.store.transaction((tx) => {
      const stats = tx.get(this.stats, seal.id);
      if (stats) tx.put(this.stats, seal.id, { ...stats, uses: stats.uses - 1, [kind]: stats[kind] - 1, failed: (stats.failed ?? 0) + 1 });
      tx.put(this.usage, recorded.key, { ...recorded.record, failed: code });
      this.#o.audit.append(tx, { actor: user.actor, action: 'seal.use', object: `seal:${seal.id}`, outcome: 'failure', requestId,
        details: { count: 1, uses: [auditedUse(recorded.record, requestId)], error: code } });
    });
  }

  /** The stored seal, shared (Table.getShared: read on every seal, decoded only when it changed): not to be modified. */
  #mustGet(id: string): Readonly<SealRecord> {
    const s = typeof id === 'string' ? this.seals.getShared(id) : undefined;
    if (!s) throw new YinxinError('not-found', `no seal ${id}`, { id });
    return s;
  }

  #issued(id: string): Readonly<SealRecord> {
    const s = this.#mustGet(id);
    if (!s.certificateSerial) throw new YinxinError('conflict', `seal ${id} has not been approved`, { id });
    return s;
  }
}
