import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { isYinxinError } from '../common/errors.ts';
import { acquireInstanceLock } from './lock.ts';

t.test('a second instance on the same data directory is refused while the first holds it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'yx-lock-'));
  const path = join(dir, 'appliance.lock');
  // The holder is another live process (its pid in the file), as in production.
  writeFileSync(path, `${process.ppid}\n`);
  try {
    acquireInstanceLock(path);
    t.fail('should refuse');
  } catch (e) {
    t.ok(isYinxinError(e, 'conflict'));
    t.match((e as Error).message, new RegExp(`pid ${process.ppid}.*already running`));
  }
});

t.test('a stale lock (its process gone) is taken over, and released', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'yx-lock-'));
  const path = join(dir, 'appliance.lock');
  const dead = spawnSync(process.execPath, ['-e', 'console.log(process.pid)']).stdout.toString().trim();
  writeFileSync(path, `${dead}\n`);
  const lock = acquireInstanceLock(path);
  t.equal(readFileSync(path, 'utf8').trim(), String(process.pid));
  lock.release();
  const again = acquireInstanceLock(path);
  again.release();
});
