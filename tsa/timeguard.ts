/**
 * The clock-trust monitor. A time-stamp is worth exactly the trust in its genTime, so the TSA
 * refuses to stamp (PKIStatus rejection, failInfo timeNotAvailable, RFC 3161 s2.4.2) when:
 *
 *  1. the wall clock jumped backwards: the difference between the wall clock and the monotonic
 *     clock (which never jumps) shrank by more than `backwardToleranceMs` between two
 *     observations. NTP slewing moves it by at most 0.5 ms/s, far below the tolerance.
 *  2. the wall clock is earlier than the latest genTime already issued (a jump backwards while the
 *     appliance was down, or the refusal that follows 1.): tokens must never go back in time.
 *     The refusal ends when the clock passes that instant, or when an operator calls acknowledge().
 *  3. an operator-configured synchronisation check (chrony, systemd-timesyncd, or a status file;
 *     see docs/tsa-time.md) says the clock is not synchronised, its offset is above `maxOffsetMs`,
 *     its last report is stale, or the check itself fails (fail closed).
 *
 * state() is what /healthz and /metrics show.
 */
import { execFile } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { YinxinError } from '../common/errors.ts';
import type { Clock } from '../common/clock.ts';

export interface SyncReport {
  synchronised: boolean;
  /** |system clock - reference| in milliseconds, when the source reports it. */
  offsetMs?: number;
  /** What the source said, for /healthz. */
  detail: string;
}

/** A synchronisation check: resolves with the source's report, rejects if it cannot be read. */
export type SyncCheck = () => Promise<SyncReport>;

export interface TimeGuardOptions {
  clock: Clock;
  /** Milliseconds from a clock that never jumps (default performance.now). */
  monotonicNow?: () => number;
  backwardToleranceMs?: number;
  /** Latest genTime issued by earlier runs (TokenLedger.latestGenTime()). */
  latestIssued?: Date;
  syncCheck?: SyncCheck;
  /** How often the sync check runs (default 30 s) and the clocks are compared (default 1 s). */
  syncIntervalMs?: number;
  observeIntervalMs?: number;
  /** Offset above which a synchronised clock is still refused (default 1000 ms, the default accuracy). */
  maxOffsetMs?: number;
}

export interface TimeGuardState {
  trusted: boolean;
  /** Why not, when not trusted. */
  reason: string | undefined;
  /** 'unknown' when no synchronisation check is configured. */
  synchronised: boolean | 'unknown';
  syncDetail: string | undefined;
  offsetMs: number | undefined;
  lastSyncCheck: string | undefined;
  backwardJumps: number;
  latestIssued: string | undefined;
}

export class TimeGuard {
  readonly #clock: Clock;
  readonly #mono: () => number;
  readonly #tolerance: number;
  readonly #maxOffset: number;
  readonly #syncCheck: SyncCheck | undefined;
  readonly #syncInterval: number;
  readonly #observeInterval: number;
  /** wall - monotonic at the last observation. */
  #lastDelta: number;
  #latestIssued: number;
  #jumpFloor = -Infinity;
  #backwardJumps = 0;
  #jumpReason: string | undefined;
  #sync: SyncReport | undefined;
  #syncError: string | undefined;
  #lastSyncCheck: Date | undefined;
  #timers: NodeJS.Timeout[] = [];

  constructor(options: TimeGuardOptions) {
    this.#clock = options.clock;
    this.#mono = options.monotonicNow ?? (() => performance.now());
    this.#tolerance = options.backwardToleranceMs ?? 50;
    this.#maxOffset = options.maxOffsetMs ?? 1000;
    this.#syncCheck = options.syncCheck;
    this.#syncInterval = options.syncIntervalMs ?? 30_000;
    this.#observeInterval = options.observeIntervalMs ?? 1_000;
    this.#latestIssued = options.latestIssued?.getTime() ?? -Infinity;
    this.#lastDelta = this.#clock.now().getTime() - this.#mono();
  }

  /** Starts the periodic observation and synchronisation check; the first check runs now. */
  async start(): Promise<void> {
    this.stop();
    const observe = setInterval(() => this.#observe(this.#clock.now().getTime()), this.#observeInterval);
    observe.unref();
    this.#timers.push(observe);
    if (this.#syncCheck) {
      await this.checkSync();
      const sync = setInterval(() => void this.checkSync(), this.#syncInterval);
      sync.unref();
      this.#timers.push(sync);
    }
  }

  stop(): void {
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
  }

  /** Runs the configured synchronisation check once. */
  async checkSync(): Promise<void> {
    if (!this.#syncCheck) return;
    try {
      this.#sync = await this.#syncCheck();
      this.#syncError = undefined;
    } catch (e) {
      this.#sync = undefined;
      this.#syncError = `the synchronisation check failed: ${(e as Error).message}`;
    }
    this.#lastSyncCheck = this.#clock.now();
  }

  #observe(wall: number): void {
    const mono = this.#mono();
    const delta = wall - mono;
    if (delta < this.#lastDelta - this.#tolerance) {
      this.#backwardJumps++;
      this.#jumpReason = `the system clock jumped backwards by ${Math.round(this.#lastDelta - delta)} ms`;
      // Times up to what the clock read before the jump may already be in use: refuse until it passes them.
      this.#jumpFloor = Math.max(this.#jumpFloor, this.#lastDelta + mono);
    }
    this.#lastDelta = delta;
  }

  #refusal(wall: number): string | undefined {
    if (wall < this.#jumpFloor) {
      return `${this.#jumpReason ?? 'the system clock jumped backwards'}; stamping resumes at ${new Date(this.#jumpFloor).toISOString()}`;
    }
    if (wall < this.#latestIssued) {
      return `the system clock is behind the latest time already stamped (${new Date(this.#latestIssued).toISOString()})`;
    }
    // Caught up with every time already used: a past jump no longer matters.
    this.#jumpReason = undefined;
    if (this.#syncCheck) {
      if (this.#syncError) return this.#syncError;
      if (!this.#sync) return 'the clock synchronisation has not been checked yet';
      if (!this.#sync.synchronised) return `the system clock is not synchronised (${this.#sync.detail})`;
      if (this.#sync.offsetMs !== undefined && Math.abs(this.#sync.offsetMs) > this.#maxOffset) {
        return `the system clock is ${this.#sync.offsetMs} ms off its time source (limit ${this.#maxOffset} ms)`;
      }
    }
    return undefined;
  }

  /**
   * The time to stamp, or throws YinxinError 'time-not-available'. Call issued() with the genTime
   * actually used, so later refusals know the latest time issued.
   */
  now(): Date {
    const now = this.#clock.now();
    const wall = now.getTime();
    this.#observe(wall);
    const reason = this.#refusal(wall);
    if (reason) throw new YinxinError('time-not-available', reason);
    return now;
  }

  /** Records a genTime that was issued (monotone high-water mark). */
  issued(genTime: Date): void {
    const t = genTime.getTime();
    if (t > this.#latestIssued) this.#latestIssued = t;
  }

  /** Operator override after investigating a jump: accept the current clock even if it is behind. */
  acknowledge(): void {
    this.#latestIssued = -Infinity;
    this.#jumpFloor = -Infinity;
    this.#jumpReason = undefined;
    this.#lastDelta = this.#clock.now().getTime() - this.#mono();
  }

  state(): TimeGuardState {
    const wall = this.#clock.now().getTime();
    this.#observe(wall);
    const reason = this.#refusal(wall);
    return {
      trusted: reason === undefined,
      reason,
      synchronised: this.#syncCheck ? (this.#sync?.synchronised ?? false) : 'unknown',
      syncDetail: this.#sync?.detail ?? this.#syncError,
      offsetMs: this.#sync?.offsetMs,
      lastSyncCheck: this.#lastSyncCheck?.toISOString(),
      backwardJumps: this.#backwardJumps,
      latestIssued: Number.isFinite(this.#latestIssued) ? new Date(this.#latestIssued).toISOString() : undefined,
    };
  }
}

/**
 * Reads a synchronisation report in any of the forms the usual tools print:
 *  - `chronyc -c tracking` (CSV: field 5 the system time offset in seconds, field 14 the leap status)
 *  - `chronyc tracking` ("System time : 0.000012 seconds fast of NTP time", "Leap status : Normal")
 *  - `timedatectl show` ("NTPSynchronized=yes")
 * Anything else is not understood: the caller treats it as unsynchronised.
 */
export function parseSyncReport(text: string): SyncReport {
  const trimmed = text.trim();
  const csv = trimmed.split('\n')[0].split(',');
  if (csv.length >= 14 && /^[0-9A-F]{8}$/i.test(csv[0])) {
    const leap = csv[13].trim();
    const offsetMs = Number(csv[4]) * 1000;
    return { synchronised: leap !== 'Not synchronised', offsetMs: Number.isFinite(offsetMs) ? offsetMs : undefined, detail: `chrony: leap status ${leap}` };
  }
  const leap = /^Leap status\s*:\s*(.+)$/m.exec(trimmed);
  if (leap) {
    const offset = /^System time\s*:\s*([0-9.]+) seconds (fast|slow)/m.exec(trimmed);
    const offsetMs = offset ? Number(offset[1]) * 1000 * (offset[2] === 'slow' ? -1 : 1) : undefined;
    return { synchronised: leap[1].trim() !== 'Not synchronised', offsetMs, detail: `chrony: leap status ${leap[1].trim()}` };
  }
  const ntp = /^NTPSynchronized=(yes|no)$/m.exec(trimmed);
  if (ntp) return { synchronised: ntp[1] === 'yes', detail: `timedatectl: NTPSynchronized=${ntp[1]}` };
  return { synchronised: false, detail: 'unrecognised synchronisation report' };
}

function run(command: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { timeout: 5000 }, (error, stdout) => (error ? reject(error) : resolve(stdout)));
  });
}

/** Asks chronyd (`chronyc -c tracking`). */
export function chronySyncCheck(chronyc = 'chronyc'): SyncCheck {
  return async () => parseSyncReport(await run(chronyc, ['-c', 'tracking']));
}

/** Asks systemd-timesyncd through timedatectl (no offset reported). */
export function timedatectlSyncCheck(): SyncCheck {
  return async () => parseSyncReport(await run('timedatectl', ['show', '-p', 'NTPSynchronized']));
}

/**
 * Reads a report another process writes (e.g. a systemd timer running `chronyc -c tracking >
 * file`, or a container's host). A report older than maxAgeMs counts as unsynchronised.
 */
export function fileSyncCheck(path: string, maxAgeMs = 120_000, clock: Clock = { now: () => new Date() }): SyncCheck {
  return async () => {
    const [text, info] = await Promise.all([readFile(path, 'utf8'), stat(path)]);
    const age = clock.now().getTime() - info.mtimeMs;
    if (age > maxAgeMs) return { synchronised: false, detail: `the report ${path} is ${Math.round(age / 1000)} s old` };
    return parseSyncReport(text);
  };
}
