/** An injectable clock, so that cores can be tested at any instant (validity, nextUpdate, genTime). */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/** A clock for tests: stands still until moved. */
export class FixedClock implements Clock {
  #t: number;
  constructor(at: Date | string | number) {
    this.#t = new Date(at).getTime();
  }
  now(): Date {
    return new Date(this.#t);
  }
  advance(ms: number): void {
    this.#t += ms;
  }
  set(at: Date | string | number): void {
    this.#t = new Date(at).getTime();
  }
}
