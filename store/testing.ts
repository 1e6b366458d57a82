/** For tests: a temporary directory removed at teardown, and an LMDB store in one, closed at teardown. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { openLmdbStore } from './lmdb.ts';
import type { Store } from './store.ts';

export function tempDir(t: Test, prefix = 'yinxin-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function openTempStore(t: Test, prefix?: string): Store {
  const store = openLmdbStore(join(tempDir(t, prefix), 'store'));
  t.teardown(() => store.close());
  return store;
}
