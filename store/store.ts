/**
 * The storage contract. LMDB (store/lmdb.ts) is the implementation; the contract is small so a
 * PostgreSQL one can follow. Documented like oidc-provider's adapter: every method, what it
 * guarantees, what it throws.
 *
 * Model: named tables of JSON-like values (msgpack on disk) under ordered keys. Reads outside a
 * transaction see the last committed state. Writes happen only inside transaction(), whose
 * callback runs synchronously and alone (transactions are serialized), so read-check-write
 * inside it is a compare-and-swap. A state change and its audit record are written in the
 * same transaction (audit/audit.ts appends through the Tx it is given).
 */

/** Ordered keys: strings, numbers, or arrays of them (compared element by element). */
export type Key = string | number | ReadonlyArray<string | number>;

export interface RangeOptions {
  start?: Key;
  /** Exclusive. */
  end?: Key;
  /** Walks the same [start, end) interval from its end (start stays the lower bound). */
  reverse?: boolean;
  limit?: number;
  offset?: number;
}

export interface Table<V> {
  readonly name: string;
  get(key: Key): V | undefined;
  /**
   * The value as get() returns it, but possibly the very object an earlier call returned, for as
   * long as the stored value is unchanged: callers share it and must not modify it. For values
   * read on every request of a hot path (a seal's record and certificate), where decoding costs
   * more than reading; whatever changed the value (this process, another thread or process), the
   * next call sees it.
   */
  getShared(key: Key): Readonly<V> | undefined;
  has(key: Key): boolean;
  /** Entries in key order (or reverse), lazily. */
  range(options?: RangeOptions): Iterable<{ key: Key; value: V }>;
  /** Number of entries in a range (all when omitted). */
  count(options?: RangeOptions): number;
}

export interface Tx {
  /** Reads see this transaction's own earlier writes. */
  get<V>(table: Table<V>, key: Key): V | undefined;
  put<V>(table: Table<V>, key: Key, value: V): void;
  remove<V>(table: Table<V>, key: Key): void;
  /** Runs after the transaction is durably committed (e.g. to refresh a cache). Not run if it aborts. */
  afterCommit(fn: () => void): void;
}

export interface StoreStats {
  /** Bytes the data file occupies on disk. */
  sizeBytes: number;
  entries: Record<string, number>;
}

export interface Store {
  readonly path: string;
  readonly readOnly: boolean;
  /** Opens (creating on first use, unless read-only) the named table. Call at start-up, not per request. */
  table<V>(name: string): Table<V>;
  /**
   * Runs fn in one write transaction; resolves with its result once the transaction is durable on
   * disk. If fn throws, nothing it wrote is kept and the promise rejects with that error.
   * fn must be synchronous (no awaits inside). Throws 'store-unavailable' on a read-only store.
   */
  transaction<R>(fn: (tx: Tx) => R): Promise<R>;
  /** A consistent snapshot of the whole store, written to `file` while writers go on. */
  backup(file: string): Promise<void>;
  stats(): StoreStats;
  close(): Promise<void>;
}
