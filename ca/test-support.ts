/**
 * Test doubles for the CA core's tests: an in-memory Store with the contract's semantics
 * (serialized synchronous transactions, all-or-nothing, ordered array keys) and an AuditLog
 * that keeps records in a table through the caller's transaction. Not used by the appliance.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toPem } from '../common/pem.ts';
import type { AuditInput, AuditLog, AuditRecord } from '../audit/types.ts';
import type { Clock } from '../common/clock.ts';
import type { Key, RangeOptions, Store, Table, Tx } from '../store/store.ts';

function compareKeys(a: Key, b: Key): number {
  const aa = Array.isArray(a) ? a : [a];
  const bb = Array.isArray(b) ? b : [b];
  for (let i = 0; i < Math.min(aa.length, bb.length); i++) {
    const x = aa[i];
    const y = bb[i];
    if (typeof x !== typeof y) return typeof x === 'number' ? -1 : 1;
    if (x < y) return -1;
    if (x > y) return 1;
  }
  return aa.length - bb.length;
}

class MemoryTable<V> implements Table<V> {
  readonly name: string;
  readonly data = new Map<string, { key: Key; value: V }>();
  constructor(name: string) {
    this.name = name;
  }
  get(key: Key): V | undefined {
    const e = this.data.get(JSON.stringify(key));
    return e ? structuredClone(e.value) : undefined;
  }
  getShared(key: Key): Readonly<V> | undefined {
    return this.data.get(JSON.stringify(key))?.value;
  }
  has(key: Key): boolean {
    return this.data.has(JSON.stringify(key));
  }
  *range(options: RangeOptions = {}): Iterable<{ key: Key; value: V }> {
    let entries = [...this.data.values()].sort((a, b) => compareKeys(a.key, b.key));
    if (options.start !== undefined) entries = entries.filter((e) => compareKeys(e.key, options.start!) >= 0);
    if (options.end !== undefined) entries = entries.filter((e) => compareKeys(e.key, options.end!) < 0);
    if (options.reverse) entries.reverse();
    entries = entries.slice(options.offset ?? 0, options.limit === undefined ? undefined : (options.offset ?? 0) + options.limit);
    for (const e of entries) yield { key: e.key, value: structuredClone(e.value) };
  }
  count(options?: RangeOptions): number {
    return [...this.range(options)].length;
  }
}

export class MemoryStore implements Store {
  readonly path = ':memory:';
  readonly readOnly = false;
  readonly #tables = new Map<string, MemoryTable<unknown>>();
  #queue: Promise<unknown> = Promise.resolve();

  table<V>(name: string): Table<V> {
    let t = this.#tables.get(name);
    if (!t) {
      t = new MemoryTable(name);
      this.#tables.set(name, t);
    }
    return t as Table<V>;
  }

  transaction<R>(fn: (tx: Tx) => R): Promise<R> {
    const run = async () => {
      const writes = new Map<string, { table: MemoryTable<unknown>; key: Key; value: unknown; remove: boolean }>();
      const after: Array<() => void> = [];
      const id = (t: Table<unknown>, k: Key) => `${t.name}\u0000${JSON.stringify(k)}`;
      const tx: Tx = {
        get: <V>(table: Table<V>, key: Key) => {
          const w = writes.get(id(table as Table<unknown>, key));
          if (w) return w.remove ? undefined : structuredClone(w.value as V);
          return table.get(key);
        },
        put: <V>(table: Table<V>, key: Key, value: V) => {
          writes.set(id(table as Table<unknown>, key), { table: table as unknown as MemoryTable<unknown>, key, value: structuredClone(value), remove: false });
        },
        remove: <V>(table: Table<V>, key: Key) => {
          writes.set(id(table as Table<unknown>, key), { table: table as unknown as MemoryTable<unknown>, key, value: undefined, remove: true });
        },
        afterCommit: (f) => { after.push(f); },
      };
      const result = fn(tx);
      for (const w of writes.values()) {
        if (w.remove) w.table.data.delete(JSON.stringify(w.key));
        else w.table.data.set(JSON.stringify(w.key), { key: w.key, value: w.value });
      }
      for (const f of after) f();
      return result;
    };
    const p = this.#queue.then(run, run);
    this.#queue = p.catch(() => undefined);
    return p;
  }

  async backup(): Promise<void> {
    throw new Error('not supported by the in-memory store');
  }

  stats() {
    return { sizeBytes: 0, entries: Object.fromEntries([...this.#tables].map(([n, t]) => [n, t.data.size])) };
  }

  async close(): Promise<void> {}

  /** Total entries across all tables: lets tests assert "nothing stored". */
  totalEntries(): number {
    let n = 0;
    for (const t of this.#tables.values()) n += t.data.size;
    return n;
  }
}

/** A hash-chained audit log kept in a store table, appended through the caller's transaction. */
export class TableAuditLog implements AuditLog {
  readonly #table: Table<AuditRecord>;
  readonly #clock: Clock;
  constructor(store: Store, clock: Clock) {
    this.#table = store.table<AuditRecord>('audit.records');
    this.#clock = clock;
  }
  append(tx: Tx, input: AuditInput): AuditRecord {
    const head = tx.get<{ seq: number; hash: string }>(this.#table as unknown as Table<{ seq: number; hash: string }>, 'head');
    const seq = (head?.seq ?? 0) + 1;
    const base = { ...input, seq, time: this.#clock.now().toISOString(), prev: head?.hash ?? '' };
    const record: AuditRecord = { ...base, hash: createHash('sha256').update(JSON.stringify(base)).digest('hex') };
    tx.put(this.#table, seq, record);
    tx.put(this.#table as unknown as Table<{ seq: number; hash: string }>, 'head', { seq, hash: record.hash });
    return record;
  }
  list(options: { fromSeq?: number; limit?: number; actor?: string; action?: string } = {}): AuditRecord[] {
    const out: AuditRecord[] = [];
    for (const { value } of this.#table.range({ start: options.fromSeq ?? 1, end: 'head' })) {
      if (options.actor && value.actor !== options.actor) continue;
      if (options.action && value.action !== options.action) continue;
      out.push(value);
      if (options.limit && out.length >= options.limit) break;
    }
    return out;
  }
}

/**
 * A PKCS#12 builder for tests until ca/pkcs12.ts lands: `openssl pkcs12 -export` (AES-256 PBES2),
 * with the agreed buildPkcs12 signature.
 */
export function opensslPkcs12(input: { privateKeyPkcs8: Uint8Array; certificate: Uint8Array; chain: Uint8Array[]; password: string; friendlyName?: string }): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), 'yinxin-p12-'));
  try {
    writeFileSync(join(dir, 'key.pem'), toPem(input.privateKeyPkcs8, 'PRIVATE KEY'));
    writeFileSync(join(dir, 'cert.pem'), toPem(input.certificate, 'CERTIFICATE'));
    writeFileSync(join(dir, 'chain.pem'), input.chain.map((c) => toPem(c, 'CERTIFICATE')).join(''));
    execFileSync('openssl', ['pkcs12', '-export', '-inkey', join(dir, 'key.pem'), '-in', join(dir, 'cert.pem'), '-certfile', join(dir, 'chain.pem'),
      '-name', input.friendlyName ?? 'key', '-passout', 'env:P12PASS', '-keypbe', 'AES-256-CBC', '-certpbe', 'AES-256-CBC', '-out', join(dir, 'out.p12')],
    { env: { ...process.env, P12PASS: input.password }, stdio: ['ignore', 'ignore', 'pipe'] });
    return new Uint8Array(readFileSync(join(dir, 'out.p12')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
