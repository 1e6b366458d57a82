/**
 * One appliance per data directory: a second `yinxin start` on the same directory would have two
 * writers racing for serials and audit sequence numbers. (Read-only processes such as a
 * standalone OCSP responder do not take the lock.) The lock is a file holding the owner's pid;
 * a lock whose process is gone is stale and is taken over.
 */
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { YinxinError } from '../common/errors.ts';

export interface InstanceLock {
  release(): void;
}

export function acquireInstanceLock(path: string): InstanceLock {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      let released = false;
      return {
        release() {
          if (released) return;
          released = true;
          try { unlinkSync(path); } catch { /* already gone */ }
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new YinxinError('store-unavailable', `cannot create the lock file ${path}: ${(e as Error).message} (check that the data directory is writable: YINXIN_DATA)`);
      }
      const owner = lockHolder(path);
      if (owner !== null) {
        throw new YinxinError('conflict', `another yinxin (pid ${owner}) is already running on this data directory; stop it first, or give this one its own YINXIN_DATA`, { pid: owner });
      }
      try { unlinkSync(path); } catch { /* raced with another starter; retry decides */ }
    }
  }
  throw new YinxinError('conflict', `another yinxin is starting on this data directory at the same moment (${path})`);
}

/** The pid of a live appliance holding the lock, or null (no lock, or a stale one). Takes nothing. */
export function lockHolder(path: string): number | null {
  const owner = Number.parseInt(readFileSafe(path), 10);
  return Number.isInteger(owner) && owner > 0 && owner !== process.pid && processAlive(owner) ? owner : null;
}

function readFileSafe(path: string): string {
  try { return readFileSync(path, 'utf8'); } catch { return ''; }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
