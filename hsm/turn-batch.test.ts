/**
 * TurnBatchingSigner: what is asked within one event-loop turn reaches the signer together on the
 * next, each caller gets its own signature, and a failure reaches only its own caller.
 */
import t from 'tap';
import { SoftwareKeyStore } from './software.ts';
import type { Signer } from './signer.ts';
import { TurnBatchingSigner } from './turn-batch.ts';
import { verify } from 'node:crypto';

const keys = new SoftwareKeyStore();
const real = await keys.generateKeyPair('batch', { type: 'ec', curve: 'P-256' });

t.test('one turn of requests is handed over together, after the turn, and each gets its own signature', async (t) => {
  const calls: Array<{ turn: number; data: string }> = [];
  let turn = 0;
  const tick = setInterval(() => { turn++; }, 0);
  t.teardown(() => clearInterval(tick));
  const recording: Signer = { ...real, label: real.label, spec: real.spec, scheme: real.scheme, publicKeyInfo: real.publicKeyInfo,
    sign: (data, scheme) => { calls.push({ turn, data: Buffer.from(data).toString() }); return real.sign(data, scheme); } };
  const batching = new TurnBatchingSigner(recording);
  const messages = Array.from({ length: 20 }, (_, i) => `message ${i}`);
  const pending = messages.map((m) => batching.sign(Buffer.from(m)));
  t.equal(calls.length, 0, 'nothing is signed within the asking turn');
  const signatures = await Promise.all(pending);
  t.equal(calls.length, 20);
  t.equal(new Set(calls.map((c) => c.turn)).size, 1, 'all in one later turn');
  const spki = { key: Buffer.from(real.publicKeyInfo), format: 'der' as const, type: 'spki' as const };
  messages.forEach((m, i) => t.ok(verify('sha256', Buffer.from(m), spki, signatures[i]), `signature ${i} is over its own message`));
});

t.test('a signer that throws or rejects fails only that caller', async (t) => {
  let n = 0;
  const flaky: Signer = { ...real, label: real.label, spec: real.spec, scheme: real.scheme, publicKeyInfo: real.publicKeyInfo,
    sign: (data, scheme) => {
      n++;
      if (n === 2) throw new Error('thrown');
      if (n === 3) return Promise.reject(new Error('rejected'));
      return real.sign(data, scheme);
    } };
  const batching = new TurnBatchingSigner(flaky);
  const results = await Promise.allSettled([1, 2, 3, 4].map((i) => batching.sign(Buffer.from(String(i)))));
  t.same(results.map((r) => r.status), ['fulfilled', 'rejected', 'rejected', 'fulfilled']);
  t.match((results[1] as PromiseRejectedResult).reason, { message: 'thrown' });
  t.match((results[2] as PromiseRejectedResult).reason, { message: 'rejected' });
});
