/**
 * CRL publication state per CA: one CRL number sequence shared by full and delta CRLs (RFC 5280
 * s5.2.3), the current full and delta CRL DER in the store (`ca.crls`), regenerated shortly after
 * revocations (debounced) and on a schedule well before nextUpdate. Encoding is ca/crl.ts'.
 *
 *   ca.crls   [ca, 'full' | 'delta'] -> PublishedCrl;   [ca, 'counter'] -> { next: string }
 */
import type { AuditLog } from '../audit/types.ts';
import type { Clock } from '../common/clock.ts';
import { YinxinError } from '../common/errors.ts';
import type { Store, Table } from '../store/store.ts';
import type { CertificateAuthority, CertificateRecord } from './authority.ts';
import { encodeCrl as defaultEncodeCrl, type CrlEntry, type CrlParameters } from './crl.ts';

export interface PublishedCrl {
  ca: string;
  kind: 'full' | 'delta';
  /** CRLNumber as a decimal string (bigint does not survive every store encoding). */
  number: string;
  baseNumber?: string;
  thisUpdate: string;
  nextUpdate: string;
  entries: number;
  der: Uint8Array;
}

export interface CrlPublisherOptions {
  /** nextUpdate - thisUpdate. Default 24 h. */
  validityMs?: number;
  /** Re-publish once this fraction of the validity has passed. Default 0.5 (12 h before nextUpdate). */
  refreshAt?: number;
  /** Wait after a status change before re-publishing, to batch bursts of revocations. Default 2 s. */
  debounceMs?: number;
  /** How often the schedule checks. Default 60 s. */
  checkEveryMs?: number;
}

export interface CrlPublisherDeps {
  store: Store;
  audit: AuditLog;
  clock: Clock;
  authority: CertificateAuthority;
  encodeCrl?: (params: CrlParameters) => Promise<Uint8Array>;
  options?: CrlPublisherOptions;
}

type CounterRow = { next: string };

function serialBytes(hex: string): Uint8Array {
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

function entryOf(r: CertificateRecord): CrlEntry {
  const e: CrlEntry = { serial: serialBytes(r.serial), revocationDate: new Date(r.revokedAt ?? r.issuedAt) };
  if (r.reason !== undefined && r.reason !== 0) e.reason = r.reason;
  if (r.invalidityDate) e.invalidityDate = new Date(r.invalidityDate);
  return e;
}

export class CrlPublisher {
  readonly #store: Store;
  readonly #audit: AuditLog;
  readonly #clock: Clock;
  readonly #ca: CertificateAuthority;
  readonly #encode: (params: CrlParameters) => Promise<Uint8Array>;
  readonly #validityMs: number;
  readonly #refreshAt: number;
  readonly #debounceMs: number;
  readonly #checkEveryMs: number;
  readonly #pending = new Map<string, NodeJS.Timeout>();
  readonly #running = new Map<string, Promise<unknown>>();
  #interval: NodeJS.Timeout | undefined;
  readonly crls: Table<PublishedCrl | CounterRow>;
  /** Errors from background publication (the composition root logs them). */
  onError: (e: unknown, ca: string) => void = () => {};

  constructor(deps: CrlPublisherDeps) {
    this.#store = deps.store;
    this.#audit = deps.audit;
    this.#clock = deps.clock;
    this.#ca = deps.authority;
    this.#encode = deps.encodeCrl ?? defaultEncodeCrl;
    this.#validityMs = deps.options?.validityMs ?? 24 * 3600_000;
    this.#refreshAt = deps.options?.refreshAt ?? 0.5;
    this.#debounceMs = deps.options?.debounceMs ?? 2000;
    this.#checkEveryMs = deps.options?.checkEveryMs ?? 60_000;
    this.crls = deps.store.table('ca.crls');
    deps.authority.onStatusChange((ca) => this.#schedule(ca));
  }

  /** The current CRL of a CA (GET /crl/{ca}.crl), or undefined before the first publication. */
  current(ca: string, kind: 'full' | 'delta' = 'full'): PublishedCrl | undefined {
    return this.crls.get([ca, kind]) as PublishedCrl | undefined;
  }

  /** Starts the schedule: publishes every CA whose CRL is missing or due, now and every checkEveryMs. */
  start(): void {
    if (this.#interval) return;
    const tick = () => { void this.publishDue(); };
    this.#interval = setInterval(tick, this.#checkEveryMs);
    this.#interval.unref();
    tick();
  }

  async stop(): Promise<void> {
    if (this.#interval) clearInterval(this.#interval);
    this.#interval = undefined;
    for (const t of this.#pending.values()) clearTimeout(t);
    this.#pending.clear();
    await Promise.allSettled([...this.#running.values()]);
  }

  /** Publishes every CA whose full CRL is missing or past its refresh point. */
  async publishDue(): Promise<void> {
    const now = this.#clock.now().getTime();
    for (const a of this.#ca.listAuthorities()) {
      const full = this.current(a.name, 'full');
      const due = !full || now >= new Date(full.thisUpdate).getTime() + this.#refreshAt * (new Date(full.nextUpdate).getTime() - new Date(full.thisUpdate).getTime());
      if (due) await this.publish(a.name).catch((e) => this.onError(e, a.name));
    }
  }

  #schedule(ca: string): void {
    const existing = this.#pending.get(ca);
    if (existing) clearTimeout(existing);
    const t = setTimeout(() => {
      this.#pending.delete(ca);
      this.publish(ca).catch((e) => this.onError(e, ca));
    }, this.#debounceMs);
    t.unref();
    this.#pending.set(ca, t);
  }

  /**
   * Publishes a new full CRL and a delta CRL relative to the full CRL that was current before
   * (RFC 5280 s5.2.4), so relying parties holding that one can catch up. Serialized per CA.
   */
  publish(ca: string): Promise<{ full: PublishedCrl; delta: PublishedCrl }> {
    const previous = this.#running.get(ca) ?? Promise.resolve();
    const run = previous.catch(() => undefined).then(() => this.#publish(ca));
    this.#running.set(ca, run);
    void run.finally(() => { if (this.#running.get(ca) === run) this.#running.delete(ca); }).catch(() => undefined);
    return run;
  }

  async #publish(ca: string): Promise<{ full: PublishedCrl; delta: PublishedCrl }> {
    const issuer = this.#ca.issuerOf(ca);
    const thisUpdate = new Date(Math.floor(this.#clock.now().getTime() / 1000) * 1000);
    const nextUpdate = new Date(thisUpdate.getTime() + this.#validityMs);
    const counter = (this.crls.get([ca, 'counter']) as CounterRow | undefined)?.next ?? '1';
    const fullNumber = BigInt(counter);
    const deltaNumber = fullNumber + 1n;
    const base = this.current(ca, 'full');
    const baseNumber = base ? BigInt(base.number) : fullNumber;
    const since = base ? new Date(base.thisUpdate) : thisUpdate;

    const common = { issuerName: issuer.nameDer, authorityKeyId: issuer.keyIdentifier, signer: issuer.signer, thisUpdate, nextUpdate, issuingDistributionPoint: { uri: issuer.crlUrl } };
    const fullEntries = [...this.#ca.unusable(ca)].map(entryOf);
    const deltaEntries: CrlEntry[] = [];
    for (const r of this.#ca.changedSince(ca, since)) {
      // A certificate released from hold leaves the CRL: the delta says so (s5.3.1, removeFromCRL).
      deltaEntries.push(r.status === 'good' ? { serial: serialBytes(r.serial), revocationDate: thisUpdate, reason: 8 } : entryOf(r));
    }
    const fullDer = await this.#encode({ ...common, crlNumber: fullNumber, freshestCrlUri: issuer.deltaCrlUrl, entries: fullEntries });
    const deltaDer = await this.#encode({ ...common, crlNumber: deltaNumber, baseCrlNumber: baseNumber, entries: deltaEntries });
    const full: PublishedCrl = { ca, kind: 'full', number: fullNumber.toString(), thisUpdate: thisUpdate.toISOString(), nextUpdate: nextUpdate.toISOString(), entries: fullEntries.length, der: fullDer };
    const delta: PublishedCrl = { ca, kind: 'delta', number: deltaNumber.toString(), baseNumber: baseNumber.toString(), thisUpdate: full.thisUpdate, nextUpdate: full.nextUpdate, entries: deltaEntries.length, der: deltaDer };
    await this.#store.transaction((tx) => {
      const now = (tx.get(this.crls, [ca, 'counter']) as CounterRow | undefined)?.next ?? '1';
      if (now !== counter) throw new YinxinError('conflict', `the CRL number of CA ${ca} moved while publishing`, { ca });
      tx.put(this.crls, [ca, 'full'], full);
      tx.put(this.crls, [ca, 'delta'], delta);
      tx.put(this.crls, [ca, 'counter'], { next: (deltaNumber + 1n).toString() });
      this.#audit.append(tx, { actor: 'system', action: 'crl.publish', object: `crl:${ca}`, outcome: 'success', details: { number: full.number, delta: delta.number, entries: full.entries, deltaEntries: delta.entries } });
    });
    return { full, delta };
  }
}
