/**
 * The Store contract (store/store.ts) over LMDB through lmdb-js 3.
 *
 * On-disk layout: `path` is a directory holding one LMDB environment,
 *
 *   <path>/data.mdb   every table: one named LMDB sub-database per table, keys in lmdb-js'
 *                     ordered-binary encoding (strings, numbers, arrays compare as documented in
 *                     store.ts), values in msgpack
 *   <path>/lock.mdb   LMDB's reader table and writer mutex, shared by every process that opens it
 *
 * In the appliance `path` is `<dataDir>/store` (docs/data-directory.md).
 *
 * Durability: transactions are committed with LMDB's default synchronous commit (fsync before the
 * commit returns; `overlappingSync` is off, so the promise of a transaction resolves only once
 * its pages and meta page are on disk). Nothing acknowledged is lost on a crash, power loss
 * included, and LMDB's copy-on-write B-tree never shows half a transaction.
 *
 * Several processes may open the same directory: one writer (the appliance) and any number of
 * read-only readers (a standalone OCSP responder, `yinxin status`). A reader sees a commit from
 * the next event-loop timer turn after it: lmdb-js renews its read snapshot from a zero-delay timer.
 */
import { closeSync, mkdirSync, mkdtempSync, openSync, readSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { YinxinError, isYinxinError } from '../common/errors.ts';
import type { Key, RangeOptions, Store, StoreStats, Table, Tx } from './store.ts';

export interface LmdbStoreOptions {
  /** Open without write access: transaction() throws 'store-unavailable'. The store must exist. */
  readOnly?: boolean;
  /**
   * Address space reserved for the memory map (default 64 GiB). Only the file's real size uses
   * disk; this is the ceiling the data file can grow to before the store must be reopened.
   */
  mapSizeBytes?: number;
  /** Called when an afterCommit hook throws (the commit itself stands). Default: process warning. */
  onHookError?: (error: unknown) => void;
}

const DATA_FILE = 'data.mdb';
/** Entries read per chunk by Table.range(). */
const RANGE_CHUNK = 256;
const DEFAULT_MAP_SIZE = 64 * 1024 ** 3;
/** Named sub-databases one environment may hold (LMDB keeps a fixed-size table of them). */
const MAX_TABLES = 256;
/** Values getShared() keeps per table. */
const MAX_SHARED_VALUES = 1024;

type LmdbKey = string | number | Array<string | number>;

class LmdbTable<V> implements Table<V> {
  readonly name: string;
  readonly owner: LmdbStore;
  #db: Database<V, LmdbKey> | undefined;
  /** getShared()'s values by key, with the bytes each was decoded from; the oldest dropped first. */
  readonly #shared = new Map<string, { bytes: Buffer; value: V }>();

  constructor(name: string, owner: LmdbStore, db: Database<V, LmdbKey> | undefined) {
    this.name = name;
    this.owner = owner;
    this.#db = db;
  }

  /** The sub-database; undefined only in a read-only store whose writer has not created it yet. */
  db(): Database<V, LmdbKey> | undefined {
    if (!this.#db) this.#db = this.owner.openSubDatabase<V>(this.name, false);
    return this.#db;
  }

  get(key: Key): V | undefined {
    return this.db()?.get(toLmdbKey(key));
  }

  /**
   * Compares the stored bytes (a read without decoding, into lmdb-js' reused buffer) with those
   * the shared value was decoded from, and decodes only when they differ.
   */
  getShared(key: Key): Readonly<V> | undefined {
    const db = this.db();
    if (!db) return undefined;
    const lmdbKey = toLmdbKey(key);
    const id = typeof key === 'string' ? key : JSON.stringify(key);
    const fast = db.getBinaryFast(lmdbKey);
    if (!fast) {
      this.#shared.delete(id);
      return undefined;
    }
    // lmdb-js' reused buffer is larger than the value and says the value's size in `length`.
    const bytes = fast.subarray(0, fast.length);
    const known = this.#shared.get(id);
    if (known && Buffer.compare(known.bytes, bytes) === 0) return known.value;
    const copy = Buffer.from(bytes);
    const value = db.get(lmdbKey);
    if (value === undefined) return undefined;
    if (!known && this.#shared.size >= MAX_SHARED_VALUES) this.#shared.delete(this.#shared.keys().next().value!);
    this.#shared.set(id, { bytes: copy, value });
    return value;
  }

  has(key: Key): boolean {
    return this.db()?.doesExist(toLmdbKey(key)) ?? false;
  }

  /**
   * Reads in chunks of RANGE_CHUNK entries, each chunk a complete synchronous read. An lmdb-js
   * cursor must not outlive its read transaction, which lmdb-js renews between event-loop turns
   * (read-only stores every turn): a caller that awaits inside its loop (loading a signer for each
   * row, say) would otherwise walk a closed cursor, which crashes the process. A walk that spans
   * awaits may see commits made meanwhile, as two separate reads would.
   */
  range(options: RangeOptions = {}): Iterable<{ key: Key; value: V }> {
    const table = this;
    return {
      *[Symbol.iterator]() {
        const base = toLmdbRange({ ...options, limit: undefined, offset: undefined });
        let remaining = options.limit ?? Number.POSITIVE_INFINITY;
        let offset = options.offset;
        let after: LmdbKey | undefined;
        while (remaining > 0) {
          const db = table.db();
          if (!db) return;
          const bounds = after === undefined ? base : { ...base, start: after, exclusiveStart: true };
          const batch = [...db.getRange({ ...bounds, limit: Math.min(RANGE_CHUNK, remaining), offset })];
          offset = undefined;
          for (const { key, value } of batch) yield { key: key as Key, value };
          remaining -= batch.length;
          if (batch.length < RANGE_CHUNK) return;
          after = batch[batch.length - 1].key as LmdbKey;
        }
      },
    };
  }

  count(options?: RangeOptions): number {
    const db = this.db();
    if (!db) return 0;
    if (!options || (options.start === undefined && options.end === undefined && options.limit === undefined && !options.offset)) {
      return entryCount(db);
    }
    return db.getCount(toLmdbRange(options));
  }
}

/** LMDB keeps the entry count of each tree in its header: reading it costs one page, not a scan. */
function entryCount(db: Database<unknown, LmdbKey>): number {
  return (db.getStats() as { entryCount: number }).entryCount;
}

function toLmdbKey(key: Key): LmdbKey {
  return (Array.isArray(key) ? [...key] : key) as LmdbKey;
}

/**
 * The contract's range is the interval [start, end) in either direction; lmdb-js walks a reverse
 * range from `start` down to `end`, so the bounds swap and the exclusive end becomes the start.
 */
function toLmdbRange(options: RangeOptions) {
  const { start, end, reverse, limit, offset } = options;
  if (!reverse) {
    return { start: start === undefined ? undefined : toLmdbKey(start), end: end === undefined ? undefined : toLmdbKey(end), limit, offset };
  }
  return {
    reverse: true,
    start: end === undefined ? undefined : toLmdbKey(end),
    exclusiveStart: end !== undefined,
    end: start === undefined ? undefined : toLmdbKey(start),
    inclusiveEnd: start !== undefined,
    limit,
    offset,
  };
}

class LmdbTx implements Tx {
  readonly #store: LmdbStore;
  readonly hooks: Array<() => void> = [];
  open = true;
  /** Set when the callback misused the store in a way that must abort the whole transaction. */
  failure: Error | undefined;

  constructor(store: LmdbStore) {
    this.#store = store;
  }

  #db<V>(table: Table<V>): Database<V, LmdbKey> {
    if (!this.open) throw new YinxinError('internal', 'a transaction was used after its callback returned');
    if (!(table instanceof LmdbTable) || table.owner !== this.#store) {
      throw new YinxinError('internal', `table "${table.name}" does not belong to this store`);
    }
    return (table as LmdbTable<V>).db() as Database<V, LmdbKey>;
  }

  get<V>(table: Table<V>, key: Key): V | undefined {
    return this.#db(table).get(toLmdbKey(key));
  }

  put<V>(table: Table<V>, key: Key, value: V): void {
    if (value === undefined) throw new YinxinError('internal', `refusing to store undefined in ${table.name}`);
    this.#db(table).putSync(toLmdbKey(key), value);
  }

  remove<V>(table: Table<V>, key: Key): void {
    this.#db(table).removeSync(toLmdbKey(key));
  }

  afterCommit(fn: () => void): void {
    if (!this.open) throw new YinxinError('internal', 'a transaction was used after its callback returned');
    this.hooks.push(fn);
  }
}

class LmdbStore implements Store {
  readonly path: string;
  readonly readOnly: boolean;
  readonly #root: RootDatabase<unknown, LmdbKey>;
  readonly #tables = new Map<string, LmdbTable<unknown>>();
  readonly #onHookError: (error: unknown) => void;
  #current: LmdbTx | undefined;
  #closed = false;

  constructor(path: string, readOnly: boolean, root: RootDatabase<unknown, LmdbKey>, onHookError: (error: unknown) => void) {
    this.path = path;
    this.readOnly = readOnly;
    this.#root = root;
    this.#onHookError = onHookError;
  }

  openSubDatabase<V>(name: string, create: boolean): Database<V, LmdbKey> | undefined {
    if (!create && !this.#tableExists(name)) return undefined;
    return this.#root.openDB<V, LmdbKey>(name, { encoding: 'msgpack', keyEncoding: 'ordered-binary' });
  }

  /** Table names are the keys of LMDB's main database (whose values are tree headers, not msgpack). */
  #tableExists(name: string): boolean {
    for (const key of this.#root.getKeys({ start: name, limit: 1 })) return key === name;
    return false;
  }

  table<V>(name: string): Table<V> {
    if (!name) throw new YinxinError('internal', 'a table needs a name');
    const known = this.#tables.get(name);
    if (known) return known as LmdbTable<V>;
    const table = new LmdbTable<V>(name, this, this.openSubDatabase<V>(name, !this.readOnly));
    this.#tables.set(name, table as LmdbTable<unknown>);
    return table;
  }

  async transaction<R>(fn: (tx: Tx) => R): Promise<R> {
    if (this.readOnly) {
      throw new YinxinError('store-unavailable', `the store at ${this.path} is open read-only; writes go through the appliance process`);
    }
    if (this.#closed) throw new YinxinError('store-unavailable', `the store at ${this.path} is closed`);
    if (this.#current) {
      const error = new YinxinError('internal', 'store.transaction() was called inside a transaction callback; pass the Tx down instead');
      this.#current.failure ??= error;
      throw error;
    }
    const tx = new LmdbTx(this);
    // childTransaction, not transaction: lmdb-js batches the callbacks queued in one event turn into
    // one LMDB write transaction, and only a child transaction per callback lets one callback's
    // throw undo its own writes without touching its neighbours'.
    const result = await this.#root.childTransaction(() => {
      this.#current = tx;
      try {
        const value = fn(tx);
        if (tx.failure) throw tx.failure;
        if (value !== null && typeof value === 'object' && typeof (value as { then?: unknown }).then === 'function') {
          throw new YinxinError('internal', 'a transaction callback must be synchronous (it returned a promise)');
        }
        return value;
      } finally {
        this.#current = undefined;
        tx.open = false;
      }
    });
    for (const hook of tx.hooks) {
      try {
        hook();
      } catch (e) {
        this.#onHookError(e);
      }
    }
    return result as R;
  }

  async backup(file: string): Promise<void> {
    // lmdb-js copies into a directory (as <dir>/data.mdb) from a read snapshot, so writers go on.
    // The copy is compacted: free pages are left out and the B-tree is walked (and so checked).
    const work = mkdtempSync(join(dirname(file), `.${basename(file)}.`));
    try {
      await this.#root.backup(work, true);
      renameSync(join(work, DATA_FILE), file);
    } catch (e) {
      throw new YinxinError('store-unavailable', `could not write a snapshot of the store to ${file}: ${(e as Error).message}`, undefined, { cause: e });
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }

  stats(): StoreStats {
    const entries: Record<string, number> = {};
    for (const name of this.#root.getKeys()) {
      if (typeof name !== 'string') continue;
      const table = this.table<unknown>(name) as LmdbTable<unknown>;
      const db = table.db();
      if (db) entries[name] = entryCount(db);
    }
    return { sizeBytes: statSync(join(this.path, DATA_FILE)).size, entries };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#root.close();
  }
}

/**
 * Opens (creating it on first use unless read-only) the LMDB store in directory `path`.
 * Throws YinxinError 'store-unavailable' with what to do when the directory cannot be used.
 */
export function openLmdbStore(path: string, options: LmdbStoreOptions = {}): Store {
  const readOnly = options.readOnly ?? false;
  const dataFile = join(path, DATA_FILE);
  if (readOnly) {
    try {
      statSync(dataFile);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw unavailable(path, e);
      throw new YinxinError('store-unavailable',
        `there is no store at ${path} (no ${DATA_FILE}); start the appliance once ("yinxin init") or point YINXIN_DATA at the right data directory`);
    }
  }
  if (!readOnly) {
    try {
      mkdirSync(path, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw unavailable(path, e);
    }
  }
  // A data file LMDB cannot parse can crash the process inside the native module (it maps pages
  // by the numbers it reads), so the meta pages are checked here first.
  checkDataFile(dataFile);
  let root: RootDatabase<unknown, LmdbKey>;
  try {
    root = open<unknown, LmdbKey>({
      path,
      readOnly,
      maxDbs: MAX_TABLES,
      mapSize: options.mapSizeBytes ?? DEFAULT_MAP_SIZE,
      overlappingSync: false,
      noSubdir: false,
    });
  } catch (e) {
    throw unavailable(path, e);
  }
  const onHookError = options.onHookError ?? ((e: unknown) => process.emitWarning(`afterCommit hook failed: ${(e as Error)?.message ?? e}`));
  return new LmdbStore(path, readOnly, root, onHookError);
}

function unavailable(path: string, e: unknown): YinxinError {
  if (isYinxinError(e)) return e;
  const err = e as NodeJS.ErrnoException;
  const message = err?.message ?? String(e);
  if (err?.code === 'EACCES' || err?.code === 'EPERM' || /permission denied/i.test(message)) {
    return new YinxinError('store-unavailable',
      `permission denied on the store at ${path}: run the appliance as the user that owns the data directory, or fix its ownership (chown -R <user> ${path}; chmod 700 ${path})`,
      undefined, { cause: e });
  }
  if (/MDB_INVALID|MDB_VERSION_MISMATCH|MDB_CORRUPTED|MDB_PAGE_NOTFOUND/.test(message)) {
    return corrupt(path, message, e);
  }
  return new YinxinError('store-unavailable', `the store at ${path} cannot be opened (${message}); check that the directory exists, is writable and the disk is not full`, undefined, { cause: e });
}

function corrupt(path: string, what: string, cause?: unknown): YinxinError {
  return new YinxinError('store-unavailable',
    `the store at ${path} is damaged (${what}); stop the appliance and restore the last backup ("yinxin restore <file> --force"), or move ${path} aside to start empty`,
    undefined, cause === undefined ? undefined : { cause });
}

// MDB_meta as written by lmdb-js' LMDB (data format 2): each of the first two pages is a meta page,
// a 24-byte page header then magic, version, address, mapsize, the free-page and main DB records
// (48 bytes each: pad/psize, flags, depth, branch, leaf, overflow, entries, root), last_pg, txnid.
const PAGE_HEADER = 24;
const MDB_MAGIC = 0xbeefc0de;
const MDB_DATA_VERSION = 2;
const P_INVALID = 0xffffffffffffffffn;

function checkDataFile(dataFile: string): void {
  let size: number;
  try {
    size = statSync(dataFile).size;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return; // a new store
    throw unavailable(dirname(dataFile), e);
  }
  const path = dirname(dataFile);
  if (size === 0) throw corrupt(path, `${DATA_FILE} is empty`);
  let fd: number;
  try {
    fd = openSync(dataFile, 'r');
  } catch (e) {
    throw unavailable(path, e);
  }
  try {
    const first = Buffer.alloc(Math.min(size, PAGE_HEADER + 136));
    readSync(fd, first, 0, first.length, 0);
    const pageSize = first.length >= PAGE_HEADER + 28 ? first.readUInt32LE(PAGE_HEADER + 24) : 0;
    if (first.length < PAGE_HEADER + 136 || first.readUInt32LE(PAGE_HEADER) !== MDB_MAGIC) {
      throw corrupt(path, `${DATA_FILE} does not start with an LMDB meta page`);
    }
    if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0 || size < 2 * pageSize) {
      throw corrupt(path, `${DATA_FILE} has an impossible page size or is shorter than its two meta pages`);
    }
    const pages = BigInt(Math.floor(size / pageSize));
    const metas: Array<{ txnid: bigint; rootsInFile: boolean }> = [];
    for (const offset of [0, pageSize]) {
      const meta = Buffer.alloc(136);
      readSync(fd, meta, 0, meta.length, offset + PAGE_HEADER);
      if (meta.readUInt32LE(0) !== MDB_MAGIC) {
        throw corrupt(path, `the ${offset === 0 ? 'first' : 'second'} meta page of ${DATA_FILE} is overwritten`);
      }
      if ((meta.readUInt32LE(4) & 0xffff) !== MDB_DATA_VERSION) {
        throw corrupt(path, `${DATA_FILE} is LMDB data format ${meta.readUInt32LE(4) & 0xffff}, expected ${MDB_DATA_VERSION}`);
      }
      const freeRoot = meta.readBigUInt64LE(24 + 40);
      const mainRoot = meta.readBigUInt64LE(72 + 40);
      metas.push({
        txnid: meta.readBigUInt64LE(128),
        rootsInFile: [freeRoot, mainRoot].every((root) => root === P_INVALID || (root >= 2n && root < pages)),
      });
    }
    // LMDB opens the meta page with the higher transaction id.
    const newest = metas[0].txnid >= metas[1].txnid ? metas[0] : metas[1];
    if (!newest.rootsInFile) throw corrupt(path, `the current meta page of ${DATA_FILE} points past the end of the file (truncated or overwritten)`);
  } finally {
    closeSync(fd);
  }
}
