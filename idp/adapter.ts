/**
 * oidc-provider's persistence adapter on our Store (LMDB in the appliance), for every model
 * (Session, Interaction, AuthorizationCode, AccessToken, RefreshToken, ClientCredentials, Grant,
 * ReplayDetection, BackchannelAuthenticationRequest, ...), with expiry. Clients are not stored
 * here: the `Client` model is answered from the directory's applications (registered by an
 * administrator), so a disabled application stops working at once.
 *
 * Tables:
 *   idp.oidc         [model, id] -> { payload, expiresAt (epoch ms) }
 *   idp.oidc.uid     uid -> [model, id]              (Session.findByUid)
 *   idp.oidc.code    userCode -> [model, id]         (device flow; unused but part of the contract)
 *   idp.oidc.grant   [grantId, model, id] -> 1       (revokeByGrantId: one range read)
 *   idp.oidc.expiry  [expiresAt, model, id] -> 1     (sweep of expired entries)
 *
 * Expired entries are invisible to find() at once and removed by sweep() (run on a timer).
 *
 * Ending a session: oidc-provider destroys a Session both when it ends and when it renews the
 * session's id at sign-in (Session.resetIdentifier: same uid, new id), so its destroy() says
 * nothing about the session ending. yinxin's own code ends sessions through endSession() of
 * storage.transaction() (sessions.ts) or storage.destroy(), and only those paths tell the
 * onSessionEnd listeners (CAS single logout).
 *
 * Besides oidc-provider's models, yinxin keeps entries of its own here that live and expire with
 * an oidc-provider entry (the pending second-factor step of an Interaction, second-factor.ts), so
 * the same expiry sweep covers them.
 */
import type { AuditInput, AuditLog } from '../audit/types.ts';
import type { Store, Table, Tx } from '../store/store.ts';
import type { Clock } from '../common/clock.ts';

export interface AdapterPayload {
  [key: string]: unknown;
  grantId?: string;
  uid?: string;
  userCode?: string;
  consumed?: number;
}

interface Entry {
  payload: AdapterPayload;
  expiresAt: number;
}

export interface OidcAdapter {
  upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void>;
  find(id: string): Promise<AdapterPayload | undefined>;
  findByUserCode(userCode: string): Promise<AdapterPayload | undefined>;
  findByUid(uid: string): Promise<AdapterPayload | undefined>;
  consume(id: string): Promise<void>;
  destroy(id: string): Promise<void>;
  revokeByGrantId(grantId: string): Promise<void>;
}

/**
 * The entries, inside a store transaction the caller also writes to (an audit record, a user):
 * what lets a change here and its audit record be one transaction.
 */
export interface OidcEntriesTx {
  /** The payload, unless absent or expired. */
  get(model: string, id: string): AdapterPayload | undefined;
  /** When the entry expires (epoch ms), unless absent or expired. */
  expiresAt(model: string, id: string): number | undefined;
  /** Writes an entry that expires at `expiresAt` (epoch ms). */
  put(model: string, id: string, payload: AdapterPayload, expiresAt: number): void;
  remove(model: string, id: string): void;
  /** The Session whose uid is `uid` (its storage id and payload), unless absent or expired. */
  sessionByUid(uid: string): { id: string; payload: AdapterPayload } | undefined;
  /**
   * Ends a session: removes it, and every entry (codes, tokens) and the Grant of each application
   * in it. onSessionEnd listeners are told after the transaction commits. Returns the payload
   * removed, or undefined when there was none.
   */
  endSession(id: string): AdapterPayload | undefined;
}

export class OidcStorage {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #entries: Table<Entry>;
  readonly #uids: Table<[string, string]>;
  readonly #userCodes: Table<[string, string]>;
  readonly #grants: Table<number>;
  readonly #expiry: Table<number>;
  readonly #sessionEndListeners: Array<(session: { uid: string; accountId?: string }) => void> = [];
  #providerSessionEnds: { audit: AuditLog; recordFor: (id: string) => ((session: AdapterPayload) => AuditInput | undefined) | undefined } | undefined;
  /** Answers the Client model (clients come from the directory). */
  readonly #clients: (id: string) => Promise<AdapterPayload | undefined>;

  constructor(o: { store: Store; clock: Clock; clients: (id: string) => Promise<AdapterPayload | undefined> }) {
    this.#store = o.store;
    this.#clock = o.clock;
    this.#clients = o.clients;
    this.#entries = o.store.table('idp.oidc');
    this.#uids = o.store.table('idp.oidc.uid');
    this.#userCodes = o.store.table('idp.oidc.code');
    this.#grants = o.store.table('idp.oidc.grant');
    this.#expiry = o.store.table('idp.oidc.expiry');
  }

  /** The adapter class oidc-provider instantiates once per model name. */
  adapterClass(): new (model: string) => OidcAdapter {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const storage = this;
    return class StoreAdapter implements OidcAdapter {
      readonly model: string;
      constructor(model: string) {
        this.model = model;
      }
      upsert(id: string, payload: AdapterPayload, expiresIn: number) { return storage.upsert(this.model, id, payload, expiresIn); }
      async find(id: string) { return this.model === 'Client' ? storage.client(id) : storage.find(this.model, id); }
      async findByUserCode(userCode: string) { return storage.findByRef(storage.userCodeRef(userCode)); }
      async findByUid(uid: string) { return storage.findByRef(storage.uidRef(uid)); }
      consume(id: string) { return storage.consume(this.model, id); }
      destroy(id: string) { return storage.#destroyForProvider(this.model, id); }
      revokeByGrantId(grantId: string) { return storage.revokeByGrantId(grantId); }
    };
  }

  /**
   * Audits the sessions oidc-provider ends itself (RP-initiated logout) in the transaction that
   * removes them. oidc-provider also destroys a Session when it renews its id, so `recordFor`
   * decides, for each Session it destroys, whether that is a logout; it runs in the caller's async
   * context (where oidc-provider's request context is), and returns how to write the record from
   * the session removed.
   */
  auditProviderSessionEnds(audit: AuditLog, recordFor: (id: string) => ((session: AdapterPayload) => AuditInput | undefined) | undefined): void {
    this.#providerSessionEnds = { audit, recordFor };
  }

  async #destroyForProvider(model: string, id: string): Promise<void> {
    const ends = model === 'Session' ? this.#providerSessionEnds : undefined;
    const recordOf = ends?.recordFor(id);
    await this.#store.transaction((tx) => {
      const removed = this.#remove(tx, model, id);
      const record = removed && recordOf ? recordOf(removed.payload) : undefined;
      if (record) ends!.audit.append(tx, record);
    });
  }

  client(id: string): Promise<AdapterPayload | undefined> {
    return this.#clients(id);
  }

  uidRef(uid: string): [string, string] | undefined {
    return this.#uids.get(uid);
  }

  /** The live Session whose uid is `uid`: its storage id and payload. */
  sessionByUid(uid: string): { id: string; payload: AdapterPayload } | undefined {
    const ref = this.#uids.get(uid);
    const payload = ref?.[0] === 'Session' ? this.find('Session', ref[1]) : undefined;
    return ref && payload ? { id: ref[1], payload } : undefined;
  }

  userCodeRef(code: string): [string, string] | undefined {
    return this.#userCodes.get(code);
  }

  async upsert(model: string, id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
    const expiresAt = expiresIn ? this.#clock.now().getTime() + expiresIn * 1000 : Number.MAX_SAFE_INTEGER;
    await this.#store.transaction((tx) => this.#put(tx, model, id, payload, expiresAt));
  }

  #put(tx: Tx, model: string, id: string, payload: AdapterPayload, expiresAt: number): void {
    const old = tx.get(this.#entries, [model, id]);
    if (old) tx.remove(this.#expiry, [old.expiresAt, model, id]);
    tx.put(this.#entries, [model, id], { payload, expiresAt });
    tx.put(this.#expiry, [expiresAt, model, id], 1);
    if (payload.grantId) tx.put(this.#grants, [payload.grantId, model, id], 1);
    if (payload.uid) tx.put(this.#uids, payload.uid, [model, id]);
    if (payload.userCode) tx.put(this.#userCodes, payload.userCode, [model, id]);
  }

  find(model: string, id: string): AdapterPayload | undefined {
    const e = this.#entries.get([model, id]);
    if (!e || e.expiresAt <= this.#clock.now().getTime()) return undefined;
    return e.payload;
  }

  findByRef(ref: [string, string] | undefined): AdapterPayload | undefined {
    return ref ? this.find(ref[0], ref[1]) : undefined;
  }

  async consume(model: string, id: string): Promise<void> {
    await this.#store.transaction((tx) => {
      const e = tx.get(this.#entries, [model, id]);
      if (e) tx.put(this.#entries, [model, id], { ...e, payload: { ...e.payload, consumed: Math.floor(this.#clock.now().getTime() / 1000) } });
    });
  }

  /** Runs fn in one store transaction with the entries (and whatever else fn writes through tx). */
  transaction<R>(fn: (tx: Tx, entries: OidcEntriesTx) => R): Promise<R> {
    return this.#store.transaction((tx) => fn(tx, this.within(tx)));
  }

  /** The entries inside a transaction someone else opened (a directory change ending sessions, say). */
  within(tx: Tx): OidcEntriesTx {
    const now = this.#clock.now().getTime();
    const live = (model: string, id: string) => {
      const e = tx.get(this.#entries, [model, id]);
      return e && e.expiresAt > now ? e : undefined;
    };
    const get = (model: string, id: string) => live(model, id)?.payload;
    return {
      get,
      expiresAt: (model, id) => live(model, id)?.expiresAt,
      put: (model, id, payload, expiresAt) => this.#put(tx, model, id, payload, expiresAt),
      remove: (model, id) => void this.#remove(tx, model, id),
      sessionByUid: (uid) => {
        const ref = tx.get(this.#uids, uid);
        const payload = ref?.[0] === 'Session' ? get('Session', ref[1]) : undefined;
        return ref && payload ? { id: ref[1], payload } : undefined;
      },
      endSession: (id) => {
        const removed = this.#remove(tx, 'Session', id);
        if (!removed) return undefined;
        for (const a of Object.values((removed.payload.authorizations ?? {}) as Record<string, { grantId?: string }>)) {
          if (!a.grantId) continue;
          this.#revokeGrantIn(tx, a.grantId);
          this.#remove(tx, 'Grant', a.grantId);
        }
        if (typeof removed.payload.uid === 'string') {
          const ended = { uid: removed.payload.uid, accountId: removed.payload.accountId as string | undefined };
          tx.afterCommit(() => this.#tellSessionEnd(ended));
        }
        return removed.payload;
      },
    };
  }

  /** Removes an entry; for a Session, that is the session ending: onSessionEnd listeners are told. */
  async destroy(model: string, id: string): Promise<void> {
    const removed = await this.#store.transaction((tx) => this.#remove(tx, model, id));
    if (model !== 'Session' || typeof removed?.payload.uid !== 'string') return;
    this.#tellSessionEnd({ uid: removed.payload.uid, accountId: removed.payload.accountId as string | undefined });
  }

  #tellSessionEnd(ended: { uid: string; accountId?: string }): void {
    for (const listener of this.#sessionEndListeners) listener(ended);
  }

  /** Calls `listener` (synchronously; start async work yourself) after yinxin ends a session through destroy(). */
  onSessionEnd(listener: (session: { uid: string; accountId?: string }) => void): void {
    this.#sessionEndListeners.push(listener);
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    await this.#store.transaction((tx) => this.#revokeGrantIn(tx, grantId));
  }

  #revokeGrantIn(tx: Tx, grantId: string): void {
    const refs = [...this.#grants.range({ start: [grantId], end: [grantId, '\uffff'] })].map((e) => e.key as [string, string, string]);
    for (const [, model, id] of refs) this.#remove(tx, model, id);
  }

  /** Removes every entry that expired; returns how many. */
  async sweep(limit = 10_000): Promise<number> {
    const now = this.#clock.now().getTime();
    const due = [...this.#expiry.range({ end: [now], limit })].map((e) => e.key as [number, string, string]);
    if (!due.length) return 0;
    await this.#store.transaction((tx) => {
      for (const [, model, id] of due) this.#remove(tx, model, id);
    });
    return due.length;
  }

  /** Active entries of one model (e.g. sessions, for the admin API). */
  *entries(model: string): Iterable<{ id: string; payload: AdapterPayload; expiresAt: number }> {
    const now = this.#clock.now().getTime();
    for (const { key, value } of this.#entries.range({ start: [model], end: [model, '\uffff'] })) {
      if (value.expiresAt > now) yield { id: (key as string[])[1], payload: value.payload, expiresAt: value.expiresAt };
    }
  }

  #remove(tx: Tx, model: string, id: string): Entry | undefined {
    const e = tx.get(this.#entries, [model, id]);
    if (!e) return undefined;
    tx.remove(this.#entries, [model, id]);
    tx.remove(this.#expiry, [e.expiresAt, model, id]);
    if (e.payload.grantId) tx.remove(this.#grants, [e.payload.grantId, model, id]);
    if (e.payload.uid && tx.get(this.#uids, e.payload.uid)?.[1] === id) tx.remove(this.#uids, e.payload.uid);
    if (e.payload.userCode) tx.remove(this.#userCodes, e.payload.userCode);
    return e;
  }
}
