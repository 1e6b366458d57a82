/**
 * The seals' time-stamp client: its query is a DER template and its reply check steps over DER
 * headers itself, so both are held against independent readers. The query must be what the TSA's
 * own parser and `openssl ts -query -text` read; the quick check must accept a plain grant for
 * its query and nothing the full reader (tsa/fast-client.ts) would refuse, over truncations and
 * thousands of mutations; and timeStampImprint must answer every bad reply with
 * 'time-not-available' only.
 */
import { createHash, randomBytes } from 'node:crypto';
import t from 'tap';
import { isYinxinError } from '../common/errors.ts';
import { grantedTokenFor, readTimeStampReply } from '../tsa/fast-client.ts';
import { parseTimeStampQueryFull, DEFAULT_TSA_HASHES } from '../tsa/request.ts';
import { makeSealPki, run } from './test-support.ts';
import { grantedTokenQuick, sealTimeStampQuery, timeStampImprint } from './time-stamp.ts';

const pki = await makeSealPki();
t.teardown(() => pki.cleanup());
const nonceOf = (q: { nonce: Uint8Array }) => BigInt(`0x${Buffer.from(q.nonce).toString('hex')}`);

t.test('the query is a v1 TimeStampReq with the imprint, a positive 63-bit nonce and certReq', async (t) => {
  const imprint = new Uint8Array(createHash('sha256').update('seal').digest());
  const seen = new Set<bigint>();
  let misread = 0;
  for (let i = 0; i < 600; i++) {
    const query = sealTimeStampQuery(imprint);
    const parsed = parseTimeStampQueryFull(query.der, new Set(DEFAULT_TSA_HASHES));
    if (Buffer.compare(parsed.hashedMessage, imprint) !== 0 || Buffer.compare(parsed.nonce!, query.nonce) !== 0) misread++;
    if (i === 0) {
      t.equal(parsed.hash.name, 'SHA-256');
      t.equal(parsed.certReq, true);
      t.equal(parsed.policy, undefined);
      const text = run('openssl', ['ts', '-query', '-in', pki.file('query.tsq', query.der), '-text']);
      t.match(text.out, /Version: 1/);
      t.match(text.out, /Hash Algorithm: sha256/);
      t.match(text.out, /Certificate required: yes/);
    }
    const nonce = nonceOf(query);
    if (!(nonce >= 2n ** 62n && nonce < 2n ** 63n)) misread++;
    seen.add(nonce);
  }
  t.equal(misread, 0, 'the TSA parser reads back the imprint and nonce; every nonce is positive, 63 bits in 8 octets');
  t.equal(seen.size, 600, 'fresh nonces');
  t.throws(() => sealTimeStampQuery(new Uint8Array(20)), { code: 'internal' });
});

t.test('a granted reply gives the token that openssl ts -verify accepts over the data', async (t) => {
  const data = randomBytes(500);
  const token = await timeStampImprint(new Uint8Array(createHash('sha256').update(data).digest()), pki.timeStamper, 'test');
  const r = run('openssl', ['ts', '-verify', '-token_in', '-in', pki.file('token.der', token), '-data', pki.file('data.bin', data), '-CAfile', pki.rootFile, '-untrusted', pki.chainFile]);
  t.match(r.out, /Verification: OK/, r.out);
});

t.test('the quick check accepts nothing the full reader refuses; bad replies are time-not-available', async (t) => {
  const query = sealTimeStampQuery(new Uint8Array(randomBytes(32)));
  const full = { der: query.der, hash: 'SHA-256' as const, imprint: query.imprint, nonce: nonceOf(query) };
  const reply = await pki.timeStamper(query.der);
  t.same(Buffer.from(grantedTokenQuick(query, reply)!), Buffer.from(grantedTokenFor(full, reply)), 'the same token as the full reader');

  const other = await pki.timeStamper(sealTimeStampQuery(new Uint8Array(randomBytes(32))).der);
  t.equal(grantedTokenQuick(query, other), undefined, 'not a token for another query');
  const refusal = await pki.timeStamper(new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x07]));
  t.equal(grantedTokenQuick(query, refusal), undefined, 'not a refusal');
  for (const bad of [other, refusal]) {
    await t.rejects(timeStampImprint(query.imprint, async () => bad, 'test'), { code: 'time-not-available' });
  }
  await t.rejects(timeStampImprint(query.imprint, async () => { throw new Error('down'); }, 'the seal needs it'), { code: 'time-not-available', message: /^the seal needs it and the TSA failed: down/ });

  let wrong = 0;
  let quick = 0;
  const check = (bytes: Uint8Array) => {
    const token = grantedTokenQuick(query, bytes);
    if (!token) return;
    quick++;
    try {
      if (Buffer.compare(Buffer.from(grantedTokenFor(full, bytes)), Buffer.from(token)) !== 0) wrong++;
    } catch {
      wrong++;
    }
  };
  for (let cut = 0; cut < reply.length; cut++) check(reply.subarray(0, cut));
  for (let n = 0; n < 5000; n++) {
    const mutated = new Uint8Array(reply);
    const at = Math.floor(Math.random() * mutated.length);
    mutated[at] = n % 3 === 0 ? 0xff : n % 3 === 1 ? 0x00 : mutated[at] ^ (1 << (n % 8));
    check(mutated);
  }
  t.equal(wrong, 0, `every reply the quick check accepted (${quick}) the full reader accepts with the same token`);
  t.ok(readTimeStampReply(reply).token, 'the undamaged reply has a token');
});
