/**
 * Light signatures (ECDSA, Ed25519) shared between the main thread and one helper thread through
 * shared memory: the main thread publishes each request in a slot as it is asked for, the helper
 * (hsm/pkcs11-worker.ts in ring mode, with a PKCS#11 session of its own) signs slots as they
 * come, and the main thread's drain at the end of the turn signs what the helper has not taken
 * yet ("stealing" it), then waits briefly for the one the helper is signing. So the turn's
 * requests are settled in one drain, as when the main thread signed them alone (the commit that
 * a TSA's or a seal's requests share is not split), while the other core signed some of them.
 *
 * Why not postMessage: a message per signature cost the main thread ~14 us here (serializing,
 * queueing, waking the other loop), a quarter of what SoftHSM takes to sign. Publishing a slot is
 * a copy of the digest and three atomic operations, and the sleeping helper is woken by
 * Atomics.notify once per burst.
 *
 * A slot's state moves EMPTY -> READY (published) -> TAKEN (by the helper) -> DONE | FAILED, or
 * READY -> EMPTY (stolen back by the main thread), by compare-and-exchange, so each request is
 * signed exactly once; a DONE or FAILED slot is EMPTY again once the main thread has read it.
 * Only the main thread publishes and empties slots.
 */

export const RING_SLOTS = 256; // a power of two: slot = sequence & (RING_SLOTS - 1)
/** Larger inputs (Ed25519 over a long message) are signed on the main thread. */
export const RING_MAX_DATA = 1024;
export const RING_MAX_SIGNATURE = 512;
const KEY_BYTES = 8; // a CK_OBJECT_HANDLE (CK_ULONG) as pkcs11js passes it

/** control[] */
export const CONTROL = {
  /** Requests ever published (int32, wrapping). */
  published: 0,
  /** 1 while the helper waits for `published` to change. */
  sleeping: 1,
  /** Set by the main thread to make the helper close its session and end. */
  closing: 2,
  /** Set by the helper once its session is open. */
  ready: 3,
} as const;

/** state[slot] */
export const SLOT = { empty: 0, ready: 1, taken: 2, done: 3, failed: 4 } as const;

/** meta[slot * META + field] */
const META = 4;
const FIELD = { mechanism: 0, keyLength: 1, dataLength: 2, result: 3 } as const;

/** The shared buffers; cloned into the helper's workerData (SharedArrayBuffers are shared, not copied). */
export interface RingBuffers {
  control: SharedArrayBuffer;
  state: SharedArrayBuffer;
  meta: SharedArrayBuffer;
  keys: SharedArrayBuffer;
  data: SharedArrayBuffer;
  results: SharedArrayBuffer;
}

export function createRingBuffers(): RingBuffers {
  return {
    control: new SharedArrayBuffer(4 * 4),
    state: new SharedArrayBuffer(4 * RING_SLOTS),
    meta: new SharedArrayBuffer(4 * META * RING_SLOTS),
    keys: new SharedArrayBuffer(KEY_BYTES * RING_SLOTS),
    data: new SharedArrayBuffer(RING_MAX_DATA * RING_SLOTS),
    results: new SharedArrayBuffer(RING_MAX_SIGNATURE * RING_SLOTS),
  };
}

/** Views of the ring, the same on both sides. */
export class SignRing {
  readonly control: Int32Array;
  readonly state: Int32Array;
  readonly #meta: Int32Array;
  readonly #keys: Buffer;
  readonly #data: Buffer;
  readonly #results: Buffer;

  constructor(buffers: RingBuffers) {
    this.control = new Int32Array(buffers.control);
    this.state = new Int32Array(buffers.state);
    this.#meta = new Int32Array(buffers.meta);
    this.#keys = Buffer.from(buffers.keys);
    this.#data = Buffer.from(buffers.data);
    this.#results = Buffer.from(buffers.results);
  }

  // ---- main thread

  /**
   * Publishes a request: the slot it went into, or -1 when the ring cannot take it (no free slot,
   * input or handle too long), in which case the caller signs it itself.
   */
  publish(key: Uint8Array, mechanism: number, data: Uint8Array): number {
    if (data.length > RING_MAX_DATA || key.length > KEY_BYTES) return -1;
    const sequence = Atomics.load(this.control, CONTROL.published);
    const slot = sequence & (RING_SLOTS - 1);
    if (Atomics.load(this.state, slot) !== SLOT.empty) return -1;
    this.#keys.set(key, slot * KEY_BYTES);
    this.#data.set(data, slot * RING_MAX_DATA);
    const m = slot * META;
    this.#meta[m + FIELD.mechanism] = mechanism;
    this.#meta[m + FIELD.keyLength] = key.length;
    this.#meta[m + FIELD.dataLength] = data.length;
    Atomics.store(this.state, slot, SLOT.ready);
    Atomics.store(this.control, CONTROL.published, (sequence + 1) | 0);
    // One wake-up per sleep: the flag is cleared here, so requests published before the helper is
    // running again do not each pay for a futex wake.
    if (Atomics.compareExchange(this.control, CONTROL.sleeping, 1, 0) === 1) Atomics.notify(this.control, CONTROL.published);
    return slot;
  }

  /** Takes a request back from the helper if it has not started on it; true if it is now the caller's to sign. */
  steal(slot: number): boolean {
    return Atomics.compareExchange(this.state, slot, SLOT.ready, SLOT.empty) === SLOT.ready;
  }

  /**
   * The helper's answer for a slot it took: the raw signature, or the PKCS#11 return value it
   * failed with (a number); undefined while it is still signing.
   */
  answerOf(slot: number): Buffer | number | undefined {
    const state = Atomics.load(this.state, slot);
    if (state !== SLOT.done && state !== SLOT.failed) return undefined;
    const result = this.#meta[slot * META + FIELD.result];
    // CK_RV is unsigned: vendor codes (0x80000000 up) come back negative from the Int32Array.
    const answer = state === SLOT.done ? Buffer.from(this.#results.subarray(slot * RING_MAX_SIGNATURE, slot * RING_MAX_SIGNATURE + result)) : result >>> 0;
    Atomics.store(this.state, slot, SLOT.empty);
    return answer;
  }

  /** Resolves once the helper has answered the slot, or after `timeoutMs` ('timed-out'); never blocks the thread. */
  answered(slot: number, timeoutMs: number): Promise<string> {
    const wait = Atomics.waitAsync(this.state, slot, SLOT.taken, timeoutMs);
    return wait.async ? wait.value : Promise.resolve(wait.value);
  }

  // ---- helper thread

  /** Claims a published request; its key handle, mechanism and input (views of the ring) if it got it. */
  take(slot: number): { key: Buffer; mechanism: number; data: Buffer } | undefined {
    if (Atomics.compareExchange(this.state, slot, SLOT.ready, SLOT.taken) !== SLOT.ready) return undefined;
    const m = slot * META;
    return {
      key: this.#keys.subarray(slot * KEY_BYTES, slot * KEY_BYTES + this.#meta[m + FIELD.keyLength]),
      mechanism: this.#meta[m + FIELD.mechanism],
      data: this.#data.subarray(slot * RING_MAX_DATA, slot * RING_MAX_DATA + this.#meta[m + FIELD.dataLength]),
    };
  }

  /** Answers a taken slot with a signature, or with the CK_RV it failed with (a number). */
  answer(slot: number, result: Uint8Array | number): void {
    const m = slot * META;
    if (typeof result === 'number' || result.length > RING_MAX_SIGNATURE) {
      this.#meta[m + FIELD.result] = typeof result === 'number' ? result : 0x150; // CKR_BUFFER_TOO_SMALL
      Atomics.store(this.state, slot, SLOT.failed);
    } else {
      this.#results.set(result, slot * RING_MAX_SIGNATURE);
      this.#meta[m + FIELD.result] = result.length;
      Atomics.store(this.state, slot, SLOT.done);
    }
    Atomics.notify(this.state, slot);
  }
}
