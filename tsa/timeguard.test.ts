/** The clock-trust monitor: jumps against the monotonic clock, sync reports in the tools' own formats. */
import t from 'tap';
import { utimesSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FixedClock } from '../common/clock.ts';
import { fileSyncCheck, parseSyncReport, TimeGuard } from './timeguard.ts';

t.test('a backward jump beyond the tolerance refuses until the clock passes the pre-jump time', async (t) => {
  const clock = new FixedClock('2026-01-01T00:00:00Z');
  let mono = 0;
  const guard = new TimeGuard({ clock, monotonicNow: () => mono, backwardToleranceMs: 50 });
  t.ok(guard.now());
  mono += 1000; clock.advance(1000 - 30); // slewing 30 ms: tolerated
  t.ok(guard.now());
  mono += 1000; clock.advance(1000 - 400); // a 400 ms step back
  t.throws(() => guard.now(), { code: 'time-not-available', message: /jumped backwards by 400 ms/ });
  t.equal(guard.state().backwardJumps, 1);
  mono += 200; clock.advance(200);
  t.throws(() => guard.now(), { code: 'time-not-available' }, 'still behind the pre-jump reading');
  mono += 300; clock.advance(300);
  t.ok(guard.now(), 'caught up');
  t.equal(guard.state().trusted, true);
  mono += 1000; clock.advance(3_600_000); // forward steps are not refused by this check
  t.ok(guard.now());
});

t.test('sync reports: chronyc -c, chronyc, timedatectl, and garbage', async (t) => {
  t.match(parseSyncReport('C0A80001,192.168.0.1,3,1767225600.123,-0.000012,0.000001,0.000010,-12.3,0.001,0.02,0.012,0.001,64.5,Normal\n'),
    { synchronised: true, offsetMs: -0.012 });
  t.match(parseSyncReport('00000000,,0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,1.0,1.0,0.0,Not synchronised\n'), { synchronised: false });
  t.match(parseSyncReport('Reference ID    : C0A80001 (ntp)\nSystem time     : 2.500000 seconds slow of NTP time\nLeap status     : Normal\n'),
    { synchronised: true, offsetMs: -2500 });
  t.match(parseSyncReport('NTPSynchronized=no\n'), { synchronised: false });
  t.match(parseSyncReport('NTPSynchronized=yes\n'), { synchronised: true });
  t.match(parseSyncReport('hello'), { synchronised: false, detail: /unrecognised/ });
});

t.test('an offset above the limit, and a stale report file, refuse', async (t) => {
  const clock = new FixedClock(Date.now());
  const dir = mkdtempSync(join(tmpdir(), 'yinxin-timeguard-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'tracking');
  writeFileSync(file, 'NTPSynchronized=yes\n');
  const guard = new TimeGuard({ clock, monotonicNow: () => 0, syncCheck: fileSyncCheck(file, 60_000, clock) });
  t.throws(() => guard.now(), { message: /not been checked/ }, 'refuses before the first check');
  await guard.checkSync();
  t.ok(guard.now());
  utimesSync(file, new Date(Date.now() - 600_000), new Date(Date.now() - 600_000));
  await guard.checkSync();
  t.throws(() => guard.now(), { message: /s old/ });
  writeFileSync(file, 'Leap status     : Normal\nSystem time     : 3.0 seconds fast of NTP time\n');
  await guard.checkSync();
  t.throws(() => guard.now(), { message: /3000 ms off/ });
  t.equal(guard.state().offsetMs, 3000);
});
