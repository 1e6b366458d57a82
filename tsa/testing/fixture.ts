/** A TSA on a software key, an openssl-made PKI and an in-memory store, for the tests. */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FixedClock, type Clock } from '../../common/clock.ts';
import { SoftwareKeyStore } from '../../hsm/software.ts';
import type { Signer } from '../../hsm/signer.ts';
import type { Store } from '../../store/store.ts';
import { createTimeStampAuthority, type TimeStampAuthority, type TimeStampAuthorityOptions } from '../authority.ts';
import { TimeGuard, type TimeGuardOptions } from '../timeguard.ts';
import { MemoryStore } from './memory-store.ts';
import { makeTestPki, type TestPki } from './pki.ts';

export const POLICY = '1.2.3.4.1';
export const OTHER_POLICY = '1.2.3.4.2';

export interface Fixture {
  signer: Signer;
  pki: TestPki;
  make(options?: Partial<TimeStampAuthorityOptions> & { store?: Store; clock?: Clock; guard?: Partial<TimeGuardOptions> }): TimeStampAuthority;
  /** Writes bytes to a file in the fixture's temp directory and returns its path. */
  file(name: string, bytes: Uint8Array | string): string;
  /** Runs openssl, returning { code, out } instead of throwing. */
  run(args: string[], input?: Uint8Array): { code: number; out: string };
  cleanup(): void;
}

export async function makeFixture(): Promise<Fixture> {
  const keys = new SoftwareKeyStore();
  const signer = await keys.generateKeyPair('tsa', { type: 'ec', curve: 'P-256' });
  const pki = makeTestPki(signer.publicKeyInfo);
  return {
    signer,
    pki,
    make(options = {}) {
      const clock = options.clock ?? new FixedClock(Math.floor(Date.now() / 1000) * 1000 + 250);
      const { store, guard, ...rest } = options;
      return createTimeStampAuthority({
        signer,
        certificate: pki.tsa,
        chain: [pki.issuing, pki.root],
        store: store ?? new MemoryStore(),
        clock,
        timeGuard: new TimeGuard({ clock, monotonicNow: () => 0, ...guard }),
        policy: { default: POLICY, accepted: [OTHER_POLICY] },
        ...rest,
      });
    },
    file(name, bytes) {
      const path = join(pki.dir, name);
      writeFileSync(path, bytes);
      return path;
    },
    run(args, input) {
      try {
        return { code: 0, out: execFileSync('openssl', args, { input, stdio: ['pipe', 'pipe', 'pipe'] }).toString() };
      } catch (e) {
        const err = e as { status: number; stdout: Buffer; stderr: Buffer };
        return { code: err.status ?? 1, out: `${err.stdout?.toString() ?? ''}${err.stderr?.toString() ?? ''}` };
      }
    },
    cleanup: () => pki.cleanup(),
  };
}
