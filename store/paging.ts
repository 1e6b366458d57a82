/**
 * Paging over a table or index with an opaque cursor (the API's `{ items, next }`). The cursor
 * names the index it walks, so a cursor from another query is refused; a page stops after
 * SCAN_BUDGET entries even when a selective filter has found fewer than `limit`, returning a
 * cursor to go on, so no request scans a large table whole.
 */
import { YinxinError } from '../common/errors.ts';
import type { Key, Table } from './store.ts';

export interface Page<T> {
  items: T[];
  /** Pass back as `cursor` for the next page; null on the last page. */
  next: string | null;
}

interface CursorState {
  /** Which index the cursor walks. */
  i: string;
  /** The last key handed out. */
  k: Key;
}

/** Entries examined per page at most. */
export const SCAN_BUDGET = 10_000;

function encodeCursor(c: CursorState): string {
  return Buffer.from(JSON.stringify(c), 'utf8').toString('base64url');
}

function decodeCursor(text: string | undefined, index: string): Key | undefined {
  if (text === undefined) return undefined;
  let c: CursorState;
  try {
    c = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as CursorState;
  } catch {
    throw new YinxinError('bad-request', 'the cursor is not one this API returned', { field: 'cursor' });
  }
  if (!c || typeof c !== 'object' || c.i !== index || !(typeof c.k === 'string' || typeof c.k === 'number' || (Array.isArray(c.k) && c.k.every((x) => typeof x === 'string' || typeof x === 'number')))) {
    throw new YinxinError('bad-request', 'the cursor does not belong to this query', { field: 'cursor' });
  }
  return c.k;
}

/** The smallest key after `key` in the ordered-key encoding: an array with one more, empty, element. */
function after(key: Key): Key {
  return typeof key === 'string' || typeof key === 'number' ? [key, ''] : [...key, ''];
}

/** One page of `table` within [range.start, range.end), keeping what `pick` returns. */
export function pageOf<V, T>(
  table: Table<V>, index: string, range: { start?: Key; end?: Key }, cursor: string | undefined, limit: number,
  pick: (key: Key, value: V) => T | undefined,
): Page<T> {
  const from = decodeCursor(cursor, index);
  const items: T[] = [];
  let scanned = 0;
  let last: Key | undefined;
  for (const { key, value } of table.range({ start: from !== undefined ? after(from) : range.start, end: range.end })) {
    if (items.length === limit || scanned++ >= SCAN_BUDGET) return { items, next: encodeCursor({ i: index, k: last! }) };
    last = key;
    const item = pick(key, value);
    if (item !== undefined) items.push(item);
  }
  return { items, next: null };
}
