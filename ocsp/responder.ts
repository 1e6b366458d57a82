/**
 * The OCSP responder core (RFC 6960, RFC 5019 profile), for every CA of the appliance and for the
 * attribute authority's attribute certificates. No HTTP here: request DER in, response DER out.
 *
 * Speed by design (as Let's Encrypt and CFSSL): a response per certificate is signed once and
 * kept, keyed by the CertID's exact bytes; a request whose bytes were seen before is answered by
 * two map look-ups without parsing. Cached responses are re-signed by a background refresher
 * before nextUpdate, and dropped (then re-signed) as soon as the certificate's status changes:
 * the responder polls the status-change tables the CA and the AA write (every 200 ms by default),
 * which works the same inside the appliance and in a separate read-only `yinxin ocsp` process;
 * the composition root may also call invalidate() directly. Requests with a nonce, with several
 * CertIDs, or for serials never issued are signed on the fly.
 *
 * respond() never throws: any failure becomes an OCSPResponseStatus through ocsp/status.ts.
 */
import { createHash, verify as verifySignature, X509Certificate } from 'node:crypto';
import type { Clock } from '../common/clock.ts';
import { YinxinError } from '../common/errors.ts';
import { OID } from '../hsm/algorithms.ts';
import type { Store, Table } from '../store/store.ts';
import { CERT_ID_HASHES, parseOcspRequest, type ParsedOcspRequest, type RequestedCertId } from './request.ts';
import { certificateParts, ResponseWriter, type OcspSigner, type SingleStatus } from './response.ts';
import { ATTRIBUTE_AUTHORITIES_TABLE } from './signers.ts';
import { errorResponse, responseStatusFor, type OcspResponseStatusName } from './status.ts';

/** The tables the responder reads (written by ca/authority.ts and ca/attribute-authority.ts). */
export const RESPONDER_TABLES = {
  authorities: 'ca.authorities',
  certificates: 'ca.certificates',
  statusChanges: 'ca.status-changes',
  attributeAuthorities: ATTRIBUTE_AUTHORITIES_TABLE,
  attributeCertificates: 'ca.attribute-certificates',
  attributeStatusChanges: 'ca.attribute-status-changes',
} as const;

/** What the responder needs of a certificate or attribute certificate record. */
export interface StatusRecord {
  status: 'good' | 'revoked' | 'hold';
  revokedAt?: string;
  reason?: number;
}

interface IssuerRecordShape {
  name: string;
  nameDer: Uint8Array;
  certificate: Uint8Array;
}

export interface OcspResponderOptions {
  /** nextUpdate - thisUpdate, seconds (default 3600). */
  validitySeconds?: number;
  /** A cached response is re-signed once this fraction of its validity has passed (default 0.5). */
  refreshAt?: number;
  /** How often the status-change tables are polled (default 200 ms; <= 250 keeps revocations visible within a second). */
  pollIntervalMs?: number;
  /**
   * RFC 6960 s2.2 extended revoked definition: a serial the CA never issued is answered
   * "revoked" (1970-01-01, certificateHold) with id-pkix-ocsp-extended-revoke, instead of "unknown".
   */
  extendedRevoke?: boolean;
  /** Requests must be signed by a certificate of one of our CAs (sigRequired otherwise). */
  requireSignedRequests?: boolean;
  maxCertIds?: number;
  maxNonceLength?: number;
  /** Pre-signed responses kept at most (default 500,000; oldest dropped first). */
  maxCacheEntries?: number;
}

export interface OcspResponderDeps {
  store: Store;
  clock: Clock;
  /** Signing identity per issuer name (CA or attribute authority): see ensureOcspSigners / loadOcspSigners. */
  signers: Map<string, OcspSigner>;
  options?: OcspResponderOptions;
  /** Errors of the background work (refresher, polling); the caller logs them. */
  onError?: (error: unknown, what: string) => void;
}

/** An answer with what HTTP caching (RFC 5019 s6) needs when it came from a pre-signed response. */
export interface OcspAnswer {
  der: Uint8Array;
  status: OcspResponseStatusName;
  cache?: { thisUpdate: Date; nextUpdate: Date; etag: string };
}

export interface OcspResponderStats {
  requests: number;
  cacheHits: number;
  signed: number;
  byStatus: Record<OcspResponseStatusName, number>;
  cachedResponses: number;
  invalidations: number;
}

interface Issuer {
  name: string;
  kind: 'ca' | 'aa';
  /** issuerNameHash per hash OID, hex. */
  nameHashes: Map<string, string>;
  /** issuerKeyHash per hash OID, hex. */
  keyHashes: Map<string, string>;
  writer: ResponseWriter;
  records: Table<StatusRecord>;
  changes: Table<string>;
  /** Status-change cursor: the last time seen and the serials seen at that time. */
  cursor: { time: string; serials: Set<string> };
  certificate: Uint8Array;
}

interface CachedResponse {
  certIdKey: string;
  certIdDer: Uint8Array;
  issuer: Issuer;
  serial: string;
  answer: OcspAnswer;
  nextUpdateMs: number;
  refreshAfterMs: number;
}

const MAX = '\uffff';
const EPOCH = new Date(0);
const CERTIFICATE_HOLD = 6;

function hex(u: Uint8Array): string {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString('hex');
}

function latin1(u: Uint8Array): string {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString('latin1');
}

/** The exact request bytes as a map key; requests over 1 KiB (signed ones, mostly) are not remembered. */
function requestKeyOf(requestDer: Uint8Array): string | undefined {
  return requestDer.length <= 1024 ? latin1(requestDer) : undefined;
}

function wholeSecond(ms: number): Date {
  return new Date(Math.floor(ms / 1000) * 1000);
}

const signatureHashes: Record<string, string | null> = {
  [OID.ecdsaWithSHA256]: 'sha256', [OID.ecdsaWithSHA384]: 'sha384', [OID.ecdsaWithSHA512]: 'sha512',
  [OID.sha256WithRSAEncryption]: 'sha256', [OID.sha384WithRSAEncryption]: 'sha384', [OID.sha512WithRSAEncryption]: 'sha512',
  [OID.ed25519]: null,
};

export class OcspResponder {
  readonly #store: Store;
  readonly #clock: Clock;
  #signers: Map<string, OcspSigner>;
  readonly #validityMs: number;
  readonly #refreshAt: number;
  readonly #pollMs: number;
  readonly #extendedRevoke: boolean;
  readonly #requireSigned: boolean;
  readonly #limits: { maxCertIds: number; maxNonceLength: number };
  readonly #maxEntries: number;
  readonly #onError: (error: unknown, what: string) => void;

  /** hashOid + ' ' + hex(issuerKeyHash) -> issuer. */
  #issuersByKey = new Map<string, Issuer>();
  #issuers: Issuer[] = [];
  /** CertID bytes (latin1) -> pre-signed response. */
  readonly #cache = new Map<string, CachedResponse>();
  /** Request bytes (latin1) -> CertID key: the fast path needs no parsing. */
  readonly #byRequest = new Map<string, string>();
  /** issuer \0 serial -> CertID keys cached for it. */
  readonly #bySerial = new Map<string, Set<string>>();
  /** issuer \0 serial -> generation, bumped by every invalidation (a signature started before it is not cached). */
  readonly #generation = new Map<string, number>();
  readonly #inFlight = new Map<string, { generation: number; promise: Promise<CachedResponse | OcspAnswer> }>();
  #pollTimer: NodeJS.Timeout | undefined;
  #stopped = false;
  #prewarming: Promise<number> | undefined;
  #refreshTimer: NodeJS.Timeout | undefined;
  #refreshing: Promise<void> | undefined;
  #stats: OcspResponderStats = {
    requests: 0, cacheHits: 0, signed: 0, cachedResponses: 0, invalidations: 0,
    byStatus: { successful: 0, malformedRequest: 0, internalError: 0, tryLater: 0, sigRequired: 0, unauthorized: 0 },
  };

  constructor(deps: OcspResponderDeps) {
    const o = deps.options ?? {};
    this.#store = deps.store;
    this.#clock = deps.clock;
    this.#signers = deps.signers;
    this.#validityMs = (o.validitySeconds ?? 3600) * 1000;
    this.#refreshAt = o.refreshAt ?? 0.5;
    this.#pollMs = o.pollIntervalMs ?? 200;
    this.#extendedRevoke = o.extendedRevoke ?? false;
    this.#requireSigned = o.requireSignedRequests ?? false;
    this.#limits = { maxCertIds: o.maxCertIds ?? 32, maxNonceLength: o.maxNonceLength ?? 32 };
    this.#maxEntries = o.maxCacheEntries ?? 500_000;
    this.#onError = deps.onError ?? (() => {});
    if (!(this.#validityMs >= 60_000)) throw new YinxinError('config-invalid', 'OCSP response validity must be at least 60 seconds');
    if (!(this.#refreshAt > 0 && this.#refreshAt < 1)) throw new YinxinError('config-invalid', 'OCSP refreshAt must be between 0 and 1');
    this.reloadIssuers();
  }

  /**
   * (Re)reads the issuers (CAs and attribute authorities) from the store; those without a signing
   * identity are left out, and requests about them are unauthorized. Call after adding a CA.
   */
  reloadIssuers(): void {
    const byKey = new Map<string, Issuer>();
    const list: Issuer[] = [];
    const previous = new Map(this.#issuers.map((i) => [i.name, i]));
    const add = (record: IssuerRecordShape, kind: 'ca' | 'aa') => {
      const identity = this.#signers.get(record.name);
      if (!identity) return;
      const { publicKeyBits } = certificateParts(record.certificate);
      const nameHashes = new Map<string, string>();
      const keyHashes = new Map<string, string>();
      const changes = this.#store.table<string>(kind === 'ca' ? RESPONDER_TABLES.statusChanges : RESPONDER_TABLES.attributeStatusChanges);
      const issuer: Issuer = {
        name: record.name, kind, nameHashes, keyHashes,
        writer: new ResponseWriter(identity),
        records: this.#store.table<StatusRecord>(kind === 'ca' ? RESPONDER_TABLES.certificates : RESPONDER_TABLES.attributeCertificates),
        changes,
        cursor: previous.get(record.name)?.cursor ?? this.#initialCursor(changes, record.name),
        certificate: record.certificate,
      };
      for (const [oid, hash] of Object.entries(CERT_ID_HASHES)) {
        nameHashes.set(oid, createHash(hash.name).update(record.nameDer).digest('hex'));
        keyHashes.set(oid, createHash(hash.name).update(publicKeyBits).digest('hex'));
        byKey.set(`${oid} ${keyHashes.get(oid)}`, issuer);
      }
      list.push(issuer);
    };
    for (const { value } of this.#store.table<IssuerRecordShape>(RESPONDER_TABLES.authorities).range()) add(value, 'ca');
    for (const { value } of this.#store.table<IssuerRecordShape>(RESPONDER_TABLES.attributeAuthorities).range()) add(value, 'aa');
    this.#issuersByKey = byKey;
    this.#issuers = list;
  }

  /** Replaces the signing identities (renewed responder certificates, a new CA) and re-reads the issuers. */
  setSigners(signers: Map<string, OcspSigner>): void {
    this.#signers = signers;
    this.reloadIssuers();
    // Responses signed by the previous identities stay valid until their refresh point.
  }

  /** Names of the issuers answered for. */
  get issuers(): string[] {
    return this.#issuers.map((i) => i.name);
  }

  #initialCursor(changes: Table<string>, name: string): { time: string; serials: Set<string> } {
    const serials = new Set<string>();
    let time = '';
    for (const { key } of changes.range({ start: [name, ''], end: [name, MAX], reverse: true, limit: 1 })) time = (key as string[])[1];
    if (time) for (const { key } of changes.range({ start: [name, time], end: [name, time + MAX] })) serials.add((key as string[])[2]);
    return { time, serials };
  }

  /** Starts the status-change polling and the refresher. */
  start(): void {
    if (this.#pollTimer) return;
    this.#stopped = false;
    this.#pollTimer = setInterval(() => {
      try { this.pollStatusChanges(); } catch (e) { this.#onError(e, 'status-change polling'); }
    }, this.#pollMs);
    this.#pollTimer.unref();
    const refreshEvery = Math.max(1000, Math.min(60_000, Math.floor((this.#validityMs * this.#refreshAt) / 4)));
    this.#refreshTimer = setInterval(() => { void this.refresh(); }, refreshEvery);
    this.#refreshTimer.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#prewarming;
    if (this.#pollTimer) clearInterval(this.#pollTimer);
    if (this.#refreshTimer) clearInterval(this.#refreshTimer);
    this.#pollTimer = undefined;
    this.#refreshTimer = undefined;
    await this.#refreshing;
    await Promise.allSettled([...this.#inFlight.values()].map((f) => f.promise));
  }

  stats(): OcspResponderStats {
    return { ...this.#stats, byStatus: { ...this.#stats.byStatus }, cachedResponses: this.#cache.size };
  }

  /** The DER OCSPResponse for a DER OCSPRequest. Never throws. */
  async respond(requestDer: Uint8Array): Promise<Uint8Array> {
    return (await this.answer(requestDer)).der;
  }

  /**
   * The pre-signed answer when these exact request bytes were answered from one before and it is
   * still fresh, synchronously (the hot path: two map look-ups, no parsing, no promise); otherwise
   * undefined, and answer() decides.
   */
  answerFromCache(requestDer: Uint8Array): OcspAnswer | undefined {
    return this.#fromCache(requestKeyOf(requestDer));
  }

  #fromCache(requestKey: string | undefined): OcspAnswer | undefined {
    if (requestKey === undefined) return undefined;
    const certIdKey = this.#byRequest.get(requestKey);
    const hit = certIdKey === undefined ? undefined : this.#cache.get(certIdKey);
    if (!hit || this.#clock.now().getTime() >= hit.nextUpdateMs) return undefined;
    this.#stats.requests++;
    this.#stats.cacheHits++;
    this.#stats.byStatus.successful++;
    return hit.answer;
  }

  /** respond() with the caching facts HTTP GET needs. Never throws. */
  async answer(requestDer: Uint8Array): Promise<OcspAnswer> {
    const requestKey = requestKeyOf(requestDer);
    const cached = this.#fromCache(requestKey);
    if (cached) return cached;
    this.#stats.requests++;
    let answer: OcspAnswer;
    try {
      answer = await this.#answer(requestDer, requestKey);
    } catch (e) {
      const status = responseStatusFor(e);
      if (status === 'internalError') this.#onError(e, 'ocsp request');
      answer = { der: errorResponse(status === 'successful' ? 'internalError' : status), status };
    }
    this.#stats.byStatus[answer.status]++;
    return answer;
  }

  async #answer(requestDer: Uint8Array, requestKey: string | undefined): Promise<OcspAnswer> {
    const request = parseOcspRequest(requestDer, this.#limits);
    if (this.#requireSigned) this.#checkRequestSignature(request);
    const issuer = this.#issuerOf(request.certIds);
    if (request.certIds.length === 1 && !request.nonceExtension) {
      const cached = await this.#cachedResponse(issuer, request.certIds[0]);
      if ('answer' in cached) {
        if (requestKey !== undefined) {
          if (this.#byRequest.size >= 2 * this.#maxEntries) this.#byRequest.clear();
          this.#byRequest.set(requestKey, cached.certIdKey);
        }
        return cached.answer;
      }
      return cached;
    }
    return this.#signLive(issuer, request);
  }

  /** Every CertID must name one issuer of ours, the same one (one signature covers the response). */
  #issuerOf(certIds: RequestedCertId[]): Issuer {
    let issuer: Issuer | undefined;
    for (const id of certIds) {
      const found = this.#issuersByKey.get(`${id.hashOid} ${hex(id.issuerKeyHash)}`);
      if (!found || found.nameHashes.get(id.hashOid) !== hex(id.issuerNameHash)) {
        throw new YinxinError('unknown-issuer', 'a CertID names an issuer this responder does not answer for');
      }
      if (issuer && issuer !== found) throw new YinxinError('unknown-issuer', 'the CertIDs of one request must all name the same issuer');
      issuer = found;
    }
    return issuer!;
  }

  #statusOf(issuer: Issuer, serial: string): { status: SingleStatus; issued: boolean } {
    const r = issuer.records.get([issuer.name, serial]);
    if (!r) {
      // s2.2: "revoked" for a serial never issued, when the extended definition is in use.
      return { status: this.#extendedRevoke ? { status: 'revoked', revokedAt: EPOCH, reason: CERTIFICATE_HOLD } : { status: 'unknown' }, issued: false };
    }
    if (r.status === 'good') return { status: { status: 'good' }, issued: true };
    const revokedAt = new Date(r.revokedAt ?? 0);
    const reason = r.status === 'hold' ? CERTIFICATE_HOLD : r.reason;
    return { status: reason === undefined ? { status: 'revoked', revokedAt } : { status: 'revoked', revokedAt, reason }, issued: true };
  }

  #times(): { now: Date; nextUpdate: Date } {
    const now = wholeSecond(this.#clock.now().getTime());
    return { now, nextUpdate: new Date(now.getTime() + this.#validityMs) };
  }

  async #signLive(issuer: Issuer, request: ParsedOcspRequest): Promise<OcspAnswer> {
    const { now, nextUpdate } = this.#times();
    let extendedRevoke = false;
    const responses = request.certIds.map((id) => {
      const s = this.#statusOf(issuer, id.serial);
      if (!s.issued && this.#extendedRevoke) extendedRevoke = true;
      return { certIdDer: id.der, status: s.status };
    });
    const der = await issuer.writer.write({ responses, producedAt: now, thisUpdate: now, nextUpdate, nonceExtension: request.nonceExtension, extendedRevoke });
    this.#stats.signed++;
    return { der, status: 'successful' };
  }

  /** The pre-signed response for one CertID, signing (once, however many ask) when missing. */
  #cachedResponse(issuer: Issuer, id: RequestedCertId): Promise<CachedResponse | OcspAnswer> {
    const certIdKey = latin1(id.der);
    const hit = this.#cache.get(certIdKey);
    if (hit && this.#clock.now().getTime() < hit.nextUpdateMs) return Promise.resolve(hit);
    const serialKey = `${issuer.name}\u0000${id.serial}`;
    const generation = this.#generation.get(serialKey) ?? 0;
    const flying = this.#inFlight.get(certIdKey);
    if (flying && flying.generation === generation) return flying.promise;
    const promise = this.#sign(issuer, id, certIdKey, serialKey, generation);
    this.#inFlight.set(certIdKey, { generation, promise });
    const clear = () => { if (this.#inFlight.get(certIdKey)?.promise === promise) this.#inFlight.delete(certIdKey); };
    promise.then(clear, clear);
    return promise;
  }

  async #sign(issuer: Issuer, id: RequestedCertId, certIdKey: string, serialKey: string, generation: number): Promise<CachedResponse | OcspAnswer> {
    const { status, issued } = this.#statusOf(issuer, id.serial);
    const { now, nextUpdate } = this.#times();
    const der = await issuer.writer.write({
      responses: [{ certIdDer: id.der, status }], producedAt: now, thisUpdate: now, nextUpdate,
      extendedRevoke: !issued && this.#extendedRevoke,
    });
    this.#stats.signed++;
    // A serial never issued is not kept: anyone can ask about endless made-up serials.
    if (!issued) return { der, status: 'successful' };
    const entry: CachedResponse = {
      certIdKey, certIdDer: id.der, issuer, serial: id.serial,
      answer: { der, status: 'successful', cache: { thisUpdate: now, nextUpdate, etag: createHash('sha1').update(der).digest('hex') } },
      nextUpdateMs: nextUpdate.getTime(),
      refreshAfterMs: now.getTime() + this.#refreshAt * this.#validityMs,
    };
    // Keep it only if no status change arrived while it was being signed.
    if ((this.#generation.get(serialKey) ?? 0) === generation) this.#store_(entry, serialKey);
    return entry;
  }

  #store_(entry: CachedResponse, serialKey: string): void {
    if (!this.#cache.has(entry.certIdKey) && this.#cache.size >= this.#maxEntries) {
      const oldest = this.#cache.keys().next().value as string;
      const old = this.#cache.get(oldest)!;
      this.#cache.delete(oldest);
      this.#bySerial.get(`${old.issuer.name}\u0000${old.serial}`)?.delete(oldest);
    }
    this.#cache.delete(entry.certIdKey); // re-inserted last: the Map's order is the age order
    this.#cache.set(entry.certIdKey, entry);
    let keys = this.#bySerial.get(serialKey);
    if (!keys) this.#bySerial.set(serialKey, (keys = new Set()));
    keys.add(entry.certIdKey);
  }

  /**
   * Drops the pre-signed responses for a certificate whose status changed, and signs fresh ones in
   * the background. Called by the polling, and by the composition root directly if it wishes.
   */
  invalidate(issuerName: string, serial: string): void {
    const serialKey = `${issuerName}\u0000${serial.toLowerCase()}`;
    this.#generation.set(serialKey, (this.#generation.get(serialKey) ?? 0) + 1);
    this.#stats.invalidations++;
    const keys = this.#bySerial.get(serialKey);
    if (!keys) return;
    this.#bySerial.delete(serialKey);
    for (const key of keys) {
      const entry = this.#cache.get(key);
      this.#cache.delete(key);
      if (entry) {
        const id = { der: entry.certIdDer, serial: entry.serial } as RequestedCertId;
        this.#cachedResponse(entry.issuer, id).catch((e) => this.#onError(e, 're-signing after a status change'));
      }
    }
  }

  /** Reads the status changes written since the last poll and invalidates what they name. */
  pollStatusChanges(): number {
    let changed = 0;
    for (const issuer of this.#issuers) {
      const cursor = issuer.cursor;
      let time = cursor.time;
      let serials = cursor.serials;
      for (const { key } of issuer.changes.range({ start: [issuer.name, cursor.time], end: [issuer.name, MAX] })) {
        const [, at, serial] = key as [string, string, string];
        if (at === cursor.time && cursor.serials.has(serial)) continue;
        if (at !== time) {
          time = at;
          serials = new Set();
        }
        serials.add(serial);
        this.invalidate(issuer.name, serial);
        changed++;
      }
      if (time !== cursor.time) issuer.cursor = { time, serials };
      else if (serials !== cursor.serials) issuer.cursor = { time, serials };
    }
    return changed;
  }

  /** Re-signs the cached responses past their refresh point (one at a time, so live traffic keeps the HSM). */
  refresh(): Promise<void> {
    if (this.#refreshing) return this.#refreshing;
    const run = (async () => {
      const now = this.#clock.now().getTime();
      const due = [...this.#cache.values()].filter((e) => now >= e.refreshAfterMs);
      for (const e of due) {
        if (this.#cache.get(e.certIdKey) !== e) continue;
        const serialKey = `${e.issuer.name}\u0000${e.serial}`;
        try {
          await this.#sign(e.issuer, { der: e.certIdDer, serial: e.serial } as RequestedCertId, e.certIdKey, serialKey, this.#generation.get(serialKey) ?? 0);
        } catch (err) {
          this.#onError(err, 'refreshing a pre-signed response');
        }
      }
    })();
    this.#refreshing = run.finally(() => { this.#refreshing = undefined; });
    return this.#refreshing;
  }

  /**
   * Signs ahead of the first request the response for every certificate in the store (revoked ones
   * too), for SHA-1 CertIDs with NULL parameters: the RFC 5019 s2.1.1 form, and what openssl and
   * most clients send (other CertID forms are signed on first request). Works in slices of
   * `batch` signatures, yielding to the event loop between them so live traffic is served
   * meanwhile, and stops at maxCacheEntries. Reports progress after each slice.
   */
  prewarm(o: { batch?: number; onProgress?: (done: number, total: number) => void } = {}): Promise<number> {
    this.#prewarming ??= this.#prewarm(o).finally(() => { this.#prewarming = undefined; });
    return this.#prewarming;
  }

  async #prewarm(o: { batch?: number; onProgress?: (done: number, total: number) => void }): Promise<number> {
    const batch = o.batch ?? 256;
    const total = Math.min(this.#maxEntries, this.#issuers.reduce((n, i) => n + i.records.count({ start: [i.name, ''], end: [i.name, MAX] }), 0));
    let done = 0;
    let slice: Array<Promise<unknown>> = [];
    const flush = async () => {
      await Promise.allSettled(slice);
      done += slice.length;
      slice = [];
      o.onProgress?.(done, total);
      await new Promise((r) => setImmediate(r));
    };
    issuers: for (const issuer of [...this.#issuers]) {
      const prefix = sha1CertIdPrefix(issuer);
      for (const { key } of issuer.records.range({ start: [issuer.name, ''], end: [issuer.name, MAX] })) {
        if (done + slice.length >= total || this.#stopped) break issuers;
        const serial = (key as string[])[1];
        const der = certIdDer(prefix, serial);
        const id: RequestedCertId = { der, hashOid: OID.sha1, issuerNameHash: new Uint8Array(0), issuerKeyHash: new Uint8Array(0), serial };
        slice.push(this.#cachedResponse(issuer, id).catch((e) => this.#onError(e, 'pre-signing a response')));
        if (slice.length >= batch) await flush();
      }
    }
    if (slice.length) await flush();
    return done;
  }

  /**
   * RFC 6960 s4.1.2: when signed requests are required, the signature over tbsRequest must verify
   * with the first certificate it carries, and that certificate must come from one of our CAs.
   */
  #checkRequestSignature(request: ParsedOcspRequest): void {
    const sig = request.signature;
    if (!sig) throw new YinxinError('unauthenticated', 'this responder only answers signed requests');
    const hash = signatureHashes[sig.algorithmOid];
    if (hash === undefined) throw new YinxinError('bad-signature', `request signature algorithm ${sig.algorithmOid} is not accepted`);
    const [signerDer] = sig.certificates;
    if (!signerDer) throw new YinxinError('bad-signature', 'the signed request carries no certificate to check it with');
    let signerCert: X509Certificate;
    try {
      signerCert = new X509Certificate(signerDer);
    } catch {
      throw new YinxinError('bad-signature', 'the request signer certificate does not parse');
    }
    const now = this.#clock.now();
    if (now < new Date(signerCert.validFrom) || now > new Date(signerCert.validTo)) throw new YinxinError('bad-signature', 'the request signer certificate is not valid now');
    const issuedByUs = this.#issuers.some((i) => {
      if (i.kind !== 'ca') return false;
      try {
        const ca = new X509Certificate(i.certificate);
        return signerCert.checkIssued(ca) && signerCert.verify(ca.publicKey)
          && i.records.get([i.name, signerCert.serialNumber.toLowerCase()])?.status === 'good';
      } catch {
        return false;
      }
    });
    if (!issuedByUs) throw new YinxinError('bad-signature', 'the request signer certificate is not a valid certificate of this appliance');
    let ok = false;
    try {
      ok = verifySignature(hash, request.tbs, { key: signerCert.publicKey, dsaEncoding: 'der' }, sig.signature);
    } catch {
      ok = false;
    }
    if (!ok) throw new YinxinError('bad-signature', 'the request signature does not verify');
  }
}


/** hashAlgorithm (SHA-1, NULL parameters), issuerNameHash and issuerKeyHash of a CertID: everything but the serial. */
function sha1CertIdPrefix(issuer: Issuer): Uint8Array {
  return Buffer.concat([
    Buffer.from('300906052b0e03021a0500', 'hex'),
    Buffer.from([0x04, 20]), Buffer.from(issuer.nameHashes.get(OID.sha1)!, 'hex'),
    Buffer.from([0x04, 20]), Buffer.from(issuer.keyHashes.get(OID.sha1)!, 'hex'),
  ]);
}

/** CertID DER (RFC 6960 s4.1.1) from its prefix and the serial's content octets (hex, as the CA stores them). */
function certIdDer(prefix: Uint8Array, serialHex: string): Uint8Array {
  const serial = Buffer.from(serialHex, 'hex');
  const content = Buffer.concat([prefix, Buffer.from([0x02, serial.length]), serial]);
  // prefix (55 octets) + serial (at most 2 + 32): always under 128, so the short length form.
  return new Uint8Array(Buffer.concat([Buffer.from([0x30, content.length]), content]));
}

/**
 * Runs prewarm() in the background with progress in the log: a line at most every 5 seconds and
 * one at the end, with the count and the time it took.
 */
export function prewarmInBackground(responder: OcspResponder, log: { info: (o: object, msg: string) => void; error: (o: object, msg: string) => void }): Promise<number> {
  const started = Date.now();
  let lastReport = started;
  return responder.prewarm({
    onProgress: (done, total) => {
      if (done < total && Date.now() - lastReport < 5000) return;
      lastReport = Date.now();
      log.info({ done, total }, done < total ? `OCSP: pre-signing responses, ${done} of ${total}` : `OCSP: ${total} responses pre-signed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    },
  }).catch((e: unknown) => {
    log.error({ err: e }, 'OCSP: pre-signing responses failed; they are signed on first request instead');
    return 0;
  });
}
