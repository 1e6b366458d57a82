/**
 * An in-memory Store for the TSA's tests (until store/lmdb.ts exists). Transactions are
 * serialized, buffered, applied on success and "durable" a macrotask later, like an fsync.
 * `failNextCommits` makes commits fail, to prove no token is sent whose record was lost.
 */
import type { Key, RangeOptions, Store, StoreStats, Table, Tx } from '../../store/store.ts';

const keyText = (key: Key) => JSON.stringify(key);

export class MemoryStore implements Store {
  readonly path = ':memory:';
  readonly readOnly = false;
  readonly #tables = new Map<string, Map<string, { key: Key; value: unknown }>>();
  failNextCommits = 0;
  transactions = 0;

  table<V>(name: string): Table<V> {
    let rows = this.#tables.get(name);
    if (!rows) {
      rows = new Map();
      this.#tables.set(name, rows);
    }
    const data = rows;
    return {
      name,
      get: (key) => data.get(keyText(key))?.value as V | undefined,
      getShared: (key) => data.get(keyText(key))?.value as V | undefined,
      has: (key) => data.has(keyText(key)),
      range: (options?: RangeOptions) => [...data.values()].slice(0, options?.limit ?? Infinity) as Array<{ key: Key; value: V }>,
      count: () => data.size,
    };
  }

  async transaction<R>(fn: (tx: Tx) => R): Promise<R> {
    const writes = new Map<string, Map<string, { key: Key; value: unknown } | undefined>>();
    const after: Array<() => void> = [];
    const view = (t: Table<unknown>) => {
      let w = writes.get(t.name);
      if (!w) writes.set(t.name, (w = new Map()));
      return w;
    };
    const tx: Tx = {
      get: <V>(t: Table<V>, key: Key) => {
        const w = view(t as Table<unknown>);
        const k = keyText(key);
        return (w.has(k) ? w.get(k)?.value : t.get(key)) as V | undefined;
      },
      put: (t, key, value) => void view(t as Table<unknown>).set(keyText(key), { key, value: structuredClone(value) }),
      remove: (t, key) => void view(t as Table<unknown>).set(keyText(key), undefined),
      afterCommit: (f) => void after.push(f),
    };
    const result = fn(tx);
    await new Promise((r) => setImmediate(r));
    if (this.failNextCommits > 0) {
      this.failNextCommits--;
      throw new Error('simulated disk failure');
    }
    for (const [name, w] of writes) {
      const rows = this.#tables.get(name)!;
      for (const [k, v] of w) (v === undefined ? rows.delete(k) : rows.set(k, v));
    }
    this.transactions++;
    after.forEach((f) => f());
    return result;
  }

  async backup(): Promise<void> {}
  stats(): StoreStats {
    return { sizeBytes: 0, entries: Object.fromEntries([...this.#tables].map(([n, r]) => [n, r.size])) };
  }
  async close(): Promise<void> {}
}
