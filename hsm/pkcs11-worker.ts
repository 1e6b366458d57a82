/**
 * A signing thread of the PKCS#11 key store (see the dispatch policy in pkcs11.ts). It shares
 * the process's PKCS#11 module (C_Initialize answers CKR_CRYPTOKI_ALREADY_INITIALIZED, and the
 * login of the main thread's session covers every session of the process, PKCS#11 s6.7.1),
 * opens one session of its own, and signs batches synchronously: C_SignInit + C_Sign both run
 * here, which matters because C_SignInit of a token key costs SoftHSM as much as the signature.
 * Two kinds: a signing thread is sent batches of RSA signatures by message, whose mechanisms hash
 * in the token and whose output is the signature as it stands; the helper (workerData.ring)
 * signs the light requests the main thread publishes in shared memory (hsm/sign-ring.ts): ECDSA
 * digests and Ed25519 messages, answered with the token's raw output.
 */
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import pkcs11js from 'pkcs11js';
import type { Mechanism } from 'pkcs11js';
import { CONTROL, RING_SLOTS, SignRing, type RingBuffers } from './sign-ring.ts';

export interface WorkerInit {
  modulePath: string;
  slot: Uint8Array;
  /** Ring mode: sign the light requests published in this ring (hsm/sign-ring.ts) until told to close. */
  ring?: RingBuffers;
}
export interface SignJob {
  id: number;
  key: Uint8Array;
  mechanism: Mechanism;
  data: Uint8Array;
}
export type SignResult = { id: number; signature: Uint8Array } | { id: number; error: { message: string; code?: number } };

const init = workerData as WorkerInit;
// pkcs11js alone, not graphene: a thread's memory is mostly the modules it loads.
const lib = new pkcs11js.PKCS11();
lib.load(init.modulePath);
try {
  lib.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
} catch (e) {
  // The main thread initialized the module for the whole process (PKCS#11 s5.4).
  if (!(e instanceof pkcs11js.Pkcs11Error && e.code === pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED)) throw e;
}
const session = lib.C_OpenSession(Buffer.from(init.slot), pkcs11js.CKF_SERIAL_SESSION);
const out = Buffer.alloc(1024);

/**
 * Requests come in bursts (a turn's worth), often a few tens of microseconds apart: waiting on
 * the futex between two of them would make the main thread pay a wake-up (~10 us here) for each,
 * so the helper looks for the next one for a short while before it sleeps.
 */
const SPIN_MS = 0.1;

/** True if `published` moved within `ms`. */
function spinFor(control: Int32Array, published: number, ms: number): boolean {
  const until = performance.now() + ms;
  do {
    if (Atomics.load(control, CONTROL.published) !== published) return true;
  } while (performance.now() < until);
  return false;
}

if (init.ring) serveRing(new SignRing(init.ring));
else parentPort!.on('message', signBatch);

/**
 * Signs the ring's requests in the order they were published, sleeping while there are none.
 * It blocks this thread's event loop on purpose: it has nothing else to do.
 */
function serveRing(ring: SignRing): void {
  const { control } = ring;
  // The lowest priority (Linux nice is per thread): the helper signs with CPU nothing else wants.
  // At the process's priority it took the other core from the commit thread (an fsync'd commit
  // started later, and every caller of the batch waited longer) and from other processes.
  try {
    setPriority(Number(readlinkSync('/proc/thread-self').split('/').pop()), 19);
  } catch { /* not Linux: it runs at the process's priority */ }
  Atomics.store(control, CONTROL.ready, 1);
  let next = Atomics.load(control, CONTROL.published);
  for (;;) {
    const published = Atomics.load(control, CONTROL.published);
    for (; next !== published; next = (next + 1) | 0) {
      const slot = next & (RING_SLOTS - 1);
      const job = ring.take(slot);
      if (!job) continue; // stolen back by the main thread
      try {
        lib.C_SignInit(session, { mechanism: job.mechanism }, job.key);
        ring.answer(slot, lib.C_Sign(session, job.data, out));
      } catch (e) {
        ring.answer(slot, e instanceof pkcs11js.Pkcs11Error ? e.code : pkcs11js.CKR_GENERAL_ERROR);
      }
    }
    if (Atomics.load(control, CONTROL.closing) === 1) break;
    if (spinFor(control, published, SPIN_MS)) continue;
    Atomics.store(control, CONTROL.sleeping, 1);
    if (Atomics.load(control, CONTROL.published) === published) Atomics.wait(control, CONTROL.published, published);
    Atomics.store(control, CONTROL.sleeping, 0);
  }
  try { lib.C_CloseSession(session); } catch { /* token gone: nothing to close */ }
  process.exit(0);
}

function signBatch(batch: SignJob[] | 'close'): void {
  if (batch === 'close') {
    try { lib.C_CloseSession(session); } catch { /* token gone: nothing to close */ }
    parentPort!.postMessage('closed');
    return;
  }
  const results: SignResult[] = [];
  for (const job of batch) {
    try {
      lib.C_SignInit(session, job.mechanism, Buffer.from(job.key));
      const signature = lib.C_Sign(session, Buffer.from(job.data.buffer, job.data.byteOffset, job.data.byteLength), out);
      results.push({ id: job.id, signature: new Uint8Array(signature) });
    } catch (e) {
      const code = e && typeof e === 'object' && 'code' in e && typeof e.code === 'number' ? e.code : undefined;
      results.push({ id: job.id, error: { message: e instanceof Error ? e.message.split('\n')[0] : String(e), code } });
    }
  }
  parentPort!.postMessage(results);
}
if (!init.ring) parentPort!.postMessage('ready');
