/**
 * The per-address sign-in slowdown is kept in the store: two throttles on one LMDB store (two
 * processes) count the same failures, a restart keeps them, the delay grows and is capped, and the
 * window closes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { FixedClock } from '../common/clock.ts';
import { openLmdbStore } from '../store/lmdb.ts';
import { AddressThrottle } from './address-throttle.ts';

const dir = mkdtempSync(join(tmpdir(), 'yinxin-throttle-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('shared by instances on one store, kept across a restart, capped, forgotten after the window', async (t) => {
  const clock = new FixedClock('2025-05-01T09:00:00Z');
  let store = openLmdbStore(join(dir, 'store'));
  const slept: number[] = [];
  const sleep = async (ms: number) => { slept.push(ms); };
  const a = new AddressThrottle({ store, clock, sleep });
  const b = new AddressThrottle({ store, clock, sleep });
  for (let i = 0; i < 5; i++) await (i % 2 ? a : b).noteFailure('192.0.2.7');
  t.equal(a.delayFor('192.0.2.7'), 0, 'five failures are free');
  await b.noteFailure('192.0.2.7');
  t.equal(a.delayFor('192.0.2.7'), 250, 'the sixth, counted by the other instance, slows this one');
  t.equal(a.delayFor('198.51.100.1'), 0, 'other addresses are not slowed');
  await a.wait('192.0.2.7');
  t.same(slept, [250], 'wait() holds the attempt back');

  await store.close();
  store = openLmdbStore(join(dir, 'store'));
  t.teardown(() => store.close());
  const restarted = new AddressThrottle({ store, clock, sleep });
  t.equal(restarted.delayFor('192.0.2.7'), 250, 'a restart does not reset a guesser');
  for (let i = 0; i < 40; i++) await restarted.noteFailure('192.0.2.7');
  t.equal(restarted.delayFor('192.0.2.7'), 3000, 'capped at 3 s');

  clock.advance(15 * 60_000 + 1);
  t.equal(restarted.delayFor('192.0.2.7'), 0, 'the window closed');
  t.equal(await restarted.sweep(), 1, 'and sweep() forgets it');
  await restarted.noteFailure('192.0.2.7');
  t.equal(store.table('idp.throttle.address').count(), 1, 'a new window starts at one failure');
  t.equal(restarted.delayFor('192.0.2.7'), 0);
});
