/**
 * Per-address slowdown of sign-in attempts, on top of the per-account throttle (Directory.authenticate):
 * after `freeFailures` failed attempts (password or TOTP) from one client address within `windowMs`,
 * each further attempt from that address is answered `stepMs` later per extra failure, at most
 * `maxDelayMs`. A guesser spraying many accounts is slowed; no account is locked by it.
 *
 * The counts live in the store (idp.throttle.address: address -> { count, since }), so restarting the
 * appliance does not reset a guesser and every process on the same store sees the same counts.
 * sweep() drops windows that have closed.
 */
import type { Clock } from '../common/clock.ts';
import type { Store, Table } from '../store/store.ts';

interface Window {
  count: number;
  /** Epoch ms of the first failure of this window. */
  since: number;
}

export interface AddressThrottlePolicy {
  windowMs: number;
  freeFailures: number;
  stepMs: number;
  maxDelayMs: number;
}

export const DEFAULT_ADDRESS_THROTTLE: AddressThrottlePolicy = { windowMs: 15 * 60_000, freeFailures: 5, stepMs: 250, maxDelayMs: 3000 };

export class AddressThrottle {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #windows: Table<Window>;
  readonly policy: AddressThrottlePolicy;
  readonly #sleep: (ms: number) => Promise<void>;

  constructor(o: { store: Store; clock: Clock; policy?: Partial<AddressThrottlePolicy>; sleep?: (ms: number) => Promise<void> }) {
    this.#store = o.store;
    this.#clock = o.clock;
    this.#windows = o.store.table('idp.throttle.address');
    this.policy = { ...DEFAULT_ADDRESS_THROTTLE, ...o.policy };
    this.#sleep = o.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  }

  /** How long an attempt from `address` is held back now, in ms. */
  delayFor(address: string): number {
    const w = this.#open(this.#windows.get(address));
    if (!w || w.count <= this.policy.freeFailures) return 0;
    return Math.min(this.policy.maxDelayMs, (w.count - this.policy.freeFailures) * this.policy.stepMs);
  }

  /** Waits delayFor(address); call before checking the credentials. */
  async wait(address: string): Promise<void> {
    const ms = this.delayFor(address);
    if (ms > 0) await this.#sleep(ms);
  }

  async noteFailure(address: string): Promise<void> {
    const now = this.#clock.now().getTime();
    await this.#store.transaction((tx) => {
      const w = this.#open(tx.get(this.#windows, address));
      tx.put(this.#windows, address, w ? { count: w.count + 1, since: w.since } : { count: 1, since: now });
    });
  }

  /** Removes closed windows; returns how many. */
  async sweep(): Promise<number> {
    const closed = [...this.#windows.range()].filter((e) => !this.#open(e.value)).map((e) => e.key);
    if (!closed.length) return 0;
    await this.#store.transaction((tx) => {
      for (const key of closed) {
        if (!this.#open(tx.get(this.#windows, key))) tx.remove(this.#windows, key);
      }
    });
    return closed.length;
  }

  #open(w: Window | undefined): Window | undefined {
    return w && this.#clock.now().getTime() - w.since <= this.policy.windowMs ? w : undefined;
  }
}
