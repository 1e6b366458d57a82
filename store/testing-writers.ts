/**
 * Record writers for the committer tests (store/committer.test.ts). A module of their own: the
 * commit thread imports a writer's module, which must not be a test file.
 */
import { recordWriter } from './committer.ts';

export const ROWS_TABLE = 'test.rows';

/** Puts `value` under `key` unless the key is taken (then `false`, nothing written); audits each row written. */
export const testRows = recordWriter<{ key: string; value: string }, boolean>(import.meta.url, 'testRows', ({ store, audit }) => {
  const rows = store.table<string>(ROWS_TABLE);
  return (tx, items) => items.map(({ key, value }) => {
    if (tx.get(rows, key) !== undefined) return false;
    tx.put(rows, key, value);
    audit?.append(tx, { actor: 'test', action: 'test.row', object: `row:${key}`, outcome: 'success' });
    return true;
  });
});

/** Counts its records; throws when one is 'fail' (the whole transaction must then be lost). */
export const testCounts = recordWriter<string, number>(import.meta.url, 'testCounts', ({ store }) => {
  const counts = store.table<number>('test.counts');
  return (tx, items) => items.map((item) => {
    if (item === 'fail') throw new Error('this record cannot be written');
    const n = (tx.get(counts, item) ?? 0) + 1;
    tx.put(counts, item, n);
    return n;
  });
});

/** Names a writer its module does not export. */
export const missingWriter = recordWriter<string, never>(import.meta.url, 'notExported', () => () => []);
