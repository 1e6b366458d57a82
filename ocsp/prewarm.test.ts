/**
 * Pre-signing at start: every certificate's response (SHA-1 CertID, as openssl asks) is in the
 * cache before the first request, so openssl's first question is answered without a signature,
 * and the answers are right (good, revoked with reason) and verify.
 */
import t from 'tap';
import { RESPONDER_TABLES } from './responder.ts';
import { makeOcspFixture, runAsync, startResponder } from './testing.ts';

const fx = await makeOcspFixture();
t.teardown(() => fx.cleanup());

const good = await fx.issue('issuing', 'warm-good');
const revoked = await fx.issue('issuing', 'warm-revoked');
await fx.authority.revoke({ ca: 'issuing', serial: revoked.record.serial, reason: 1 }, { actor: 'operator:test' });
for (let i = 0; i < 20; i++) await fx.issue('issuing', `warm-${i}`);
const server = await startResponder(fx);
t.teardown(() => server.close());

t.test('prewarm signs one response per certificate in the store, with progress', async (t) => {
  const population = fx.store.table(RESPONDER_TABLES.certificates).count();
  const progress: Array<[number, number]> = [];
  const warmed = await server.responder.prewarm({ batch: 8, onProgress: (done, total) => progress.push([done, total]) });
  t.equal(warmed, population);
  t.equal(server.responder.stats().cachedResponses, population);
  t.equal(server.responder.stats().signed, population);
  t.ok(progress.length >= 3, 'progress after each slice');
  t.same(progress.at(-1), [population, population]);
  t.ok(progress.every(([done], i) => i === 0 || done > progress[i - 1][0]), 'progress only moves forward');
});

t.test('openssl\'s first request for each is answered from the pre-signed cache, correctly', async (t) => {
  const signedBefore = server.responder.stats().signed;
  const ask = (file: string) => runAsync('openssl', ['ocsp', '-url', server.url, '-CAfile', fx.files.root, '-verify_other', fx.files.chain, '-resp_text', '-no_nonce', '-issuer', fx.files.issuing, '-cert', file]);
  const g = await ask(good.file);
  t.match(g.out, 'Response verify OK');
  t.match(g.out, new RegExp(`${good.file}: good`));
  const r = await ask(revoked.file);
  t.match(r.out, 'Response verify OK');
  t.match(r.out, new RegExp(`${revoked.file}: revoked`));
  t.match(r.out, /Reason: keyCompromise/);
  t.equal(server.responder.stats().signed, signedBefore, 'no signature was needed');
});

t.test('a second prewarm while one runs shares it; stop() ends it early', async (t) => {
  const other = await startResponder(fx);
  const a = other.responder.prewarm({ batch: 1 });
  const b = other.responder.prewarm({ batch: 1 });
  t.equal(a, b, 'one run');
  await other.close();
  t.ok((await a) < fx.store.table(RESPONDER_TABLES.certificates).count(), `stopped after ${await a}`);
});
