/**
 * The shared ring between the main thread and the signing helper (sign-ring.ts): each request is
 * signed exactly once, by whichever side claims it; what does not fit is refused so the caller
 * signs it itself. The helper side runs here on the same thread; hsm/pkcs11.test.ts runs it for
 * real on its thread against SoftHSM.
 */
import t from 'tap';
import { Worker } from 'node:worker_threads';
import { CONTROL, createRingBuffers, RING_MAX_DATA, RING_MAX_SIGNATURE, RING_SLOTS, SignRing, SLOT } from './sign-ring.ts';

const key = new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]);
const CKM_ECDSA = 0x1041;

t.test('a published request is taken once, answered, read once, and the slot is free again', async (t) => {
  const ring = new SignRing(createRingBuffers());
  const data = new Uint8Array(32).fill(7);
  const slot = ring.publish(key, CKM_ECDSA, data);
  t.equal(slot, 0);
  t.equal(Atomics.load(ring.control, CONTROL.published), 1);
  t.equal(ring.answerOf(slot), undefined, 'no answer before the helper signs');
  const job = ring.take(slot)!;
  t.same([job.mechanism, [...job.key], [...job.data]], [CKM_ECDSA, [...key], [...data]], 'the helper sees what was published');
  t.equal(ring.take(slot), undefined, 'a taken request cannot be taken again');
  t.notOk(ring.steal(slot), 'nor stolen back');
  const signature = new Uint8Array(64).fill(9);
  ring.answer(slot, signature);
  const answer = ring.answerOf(slot);
  t.same(answer instanceof Buffer ? [...answer] : answer, [...signature], 'the answer is the signature, copied out');
  t.equal(Atomics.load(ring.state, slot), SLOT.empty, 'read once, the slot is free');
  t.equal(ring.answerOf(slot), undefined, 'and holds no answer any more');
});

t.test('a request stolen back is the caller\'s alone', async (t) => {
  const ring = new SignRing(createRingBuffers());
  const slot = ring.publish(key, CKM_ECDSA, new Uint8Array(32));
  t.ok(ring.steal(slot), 'stolen before the helper took it');
  t.equal(ring.take(slot), undefined, 'the helper then skips it');
  t.notOk(ring.steal(slot), 'it cannot be stolen twice');
  t.equal(Atomics.load(ring.state, slot), SLOT.empty);
});

t.test('failures carry the CK_RV, vendor codes included', async (t) => {
  const ring = new SignRing(createRingBuffers());
  const a = ring.publish(key, CKM_ECDSA, new Uint8Array(32));
  const b = ring.publish(key, CKM_ECDSA, new Uint8Array(32));
  const c = ring.publish(key, CKM_ECDSA, new Uint8Array(32));
  ring.take(a);
  ring.take(b);
  ring.take(c);
  ring.answer(a, 0x82); // CKR_KEY_HANDLE_INVALID
  ring.answer(b, 0x80000001); // CKR_VENDOR_DEFINED + 1
  ring.answer(c, new Uint8Array(RING_MAX_SIGNATURE + 1));
  t.equal(ring.answerOf(a), 0x82);
  t.equal(ring.answerOf(b), 0x80000001, 'read back unsigned');
  t.equal(ring.answerOf(c), 0x150, 'a signature too long for its slot is CKR_BUFFER_TOO_SMALL');
});

t.test('what does not fit is refused, and nothing is published', async (t) => {
  const ring = new SignRing(createRingBuffers());
  t.equal(ring.publish(key, CKM_ECDSA, new Uint8Array(RING_MAX_DATA + 1)), -1, 'input too long');
  t.equal(ring.publish(new Uint8Array(9), CKM_ECDSA, new Uint8Array(32)), -1, 'handle too long');
  t.equal(Atomics.load(ring.control, CONTROL.published), 0);
  for (let i = 0; i < RING_SLOTS; i++) t.equal(ring.publish(key, CKM_ECDSA, new Uint8Array([i])), i);
  t.equal(ring.publish(key, CKM_ECDSA, new Uint8Array(32)), -1, 'every slot busy');
  t.equal(Atomics.load(ring.control, CONTROL.published), RING_SLOTS);
  t.ok(ring.steal(0));
  t.equal(ring.publish(key, CKM_ECDSA, new Uint8Array([42])), 0, 'the next free slot in order is reused');
  t.same([...ring.take(0)!.data], [42], 'with the new request');
});

t.test('the sequence wraps around int32 without losing a slot', async (t) => {
  const ring = new SignRing(createRingBuffers());
  Atomics.store(ring.control, CONTROL.published, 0x7fffffff);
  const last = ring.publish(key, CKM_ECDSA, new Uint8Array([1]));
  const next = ring.publish(key, CKM_ECDSA, new Uint8Array([2]));
  t.equal(last, RING_SLOTS - 1);
  t.equal(next, 0, 'after 2^31 - 1 comes slot 0');
  t.equal(Atomics.load(ring.control, CONTROL.published), -0x7fffffff);
});

t.test('publishing wakes a sleeping helper once, and a helper on another thread signs each request once', async (t) => {
  const buffers = createRingBuffers();
  const ring = new SignRing(buffers);
  // A stand-in helper on its own thread, with the ring loop's shape: take in order, answer, sleep.
  const helper = new Worker(`
    const { workerData } = require('node:worker_threads');
    const control = new Int32Array(workerData.control), state = new Int32Array(workerData.state);
    const meta = new Int32Array(workerData.meta), data = new Uint8Array(workerData.data), results = new Uint8Array(workerData.results);
    let next = 0, wakes = 0;
    for (;;) {
      const published = Atomics.load(control, 0);
      for (; next !== published; next = (next + 1) | 0) {
        const slot = next & ${RING_SLOTS - 1};
        if (Atomics.compareExchange(state, slot, ${SLOT.ready}, ${SLOT.taken}) !== ${SLOT.ready}) continue;
        results[slot * ${RING_MAX_SIGNATURE}] = data[slot * ${RING_MAX_DATA}] ^ 0xff;
        meta[slot * 4 + 3] = 1;
        Atomics.store(state, slot, ${SLOT.done});
        Atomics.notify(state, slot);
      }
      if (Atomics.load(control, 2) === 1) break;
      Atomics.store(control, 1, 1);
      if (Atomics.load(control, 0) === published) { Atomics.wait(control, 0, published); wakes++; }
      Atomics.store(control, 1, 0);
    }
    require('node:worker_threads').parentPort.postMessage(wakes);
  `, { eval: true, workerData: buffers });
  const wakes = new Promise<number>((resolve) => helper.once('message', resolve));
  let answered = 0;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  let stolen = 0;
  for (let round = 0; round < 200; round++) {
    const slots: Array<[number, number]> = [];
    for (let i = 0; i < 8; i++) {
      const value = (round * 8 + i) & 0xff;
      slots.push([ring.publish(key, CKM_ECDSA, new Uint8Array([value])), value]);
    }
    // As the main thread does its own work meanwhile: none, a few signatures' time, or long enough for the helper to take all.
    if (round % 3) Atomics.wait(pause, 0, 0, round % 3 === 1 ? 0.2 : 5);
    for (const [slot, value] of slots.reverse()) {
      if (ring.steal(slot)) {
        stolen++;
        answered++;
        continue;
      }
      Atomics.wait(ring.state, slot, SLOT.taken, 1000);
      const answer = ring.answerOf(slot);
      if (!(answer instanceof Buffer && answer[0] === (value ^ 0xff))) t.fail(`round ${round}: the helper's answer to ${value} is ${String(answer)}`);
      else answered++;
    }
    if (round % 50 === 0) await new Promise((resolve) => setTimeout(resolve, 5));
  }
  Atomics.store(ring.control, CONTROL.closing, 1);
  Atomics.notify(ring.control, CONTROL.published);
  const woken = await wakes;
  t.equal(answered, 1600, 'every request answered once, by the side that claimed it');
  t.ok(stolen > 0 && stolen < 1600, `both sides signed (${stolen} stolen back)`);
  t.ok(woken < 1600, `the helper was woken ${woken} times for 1600 requests`);
  t.ok(Array.from(ring.state).every((s) => s === SLOT.empty), 'every slot is free at the end');
});
