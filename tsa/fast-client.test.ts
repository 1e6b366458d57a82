/**
 * The seal service's quick TSA client: its reply reader steps over DER headers itself, so it gets
 * the bad-input treatment: truncations, every single-byte mutation class, refusals, a token for
 * another query. It must answer with a token only for the right query and otherwise throw
 * 'time-not-available', never anything else.
 */
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { isYinxinError } from '../common/errors.ts';
import { grantedTokenFor, quickTimeStampQuery, readTimeStampReply } from './fast-client.ts';
import { makeFixture } from './testing/fixture.ts';

const fixture = await makeFixture();
t.teardown(() => fixture.cleanup());
const tsa = fixture.make();

t.test('a granted reply for the query gives its token, which openssl verifies', async (t) => {
  const data = randomBytes(1000);
  const { createHash } = await import('node:crypto');
  const query = quickTimeStampQuery(new Uint8Array(createHash('sha256').update(data).digest()));
  const token = grantedTokenFor(query, await tsa.respond(query.der));
  const dataFile = fixture.file('data.bin', data);
  const tokenFile = fixture.file('token.der', token);
  const chain = fixture.file('chain.pem', `${fixture.pki.issuingPem}${fixture.pki.rootPem}`);
  const r = fixture.run(['ts', '-verify', '-token_in', '-in', tokenFile, '-data', dataFile, '-CAfile', chain]);
  t.match(r.out, /Verification: OK/);
});

t.test('a token for another query, a refusal, and every damaged reply are refused as time-not-available', async (t) => {
  const query = quickTimeStampQuery(new Uint8Array(randomBytes(32)));
  const other = quickTimeStampQuery(new Uint8Array(randomBytes(32)));
  const reply = await tsa.respond(query.der);
  const otherReply = await tsa.respond(other.der);
  t.throws(() => grantedTokenFor(query, otherReply), { code: 'time-not-available' }, 'a token for another imprint and nonce');
  const refusal = await tsa.respond(new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x07]));
  t.throws(() => grantedTokenFor(query, refusal), { code: 'time-not-available' }, 'a rejection');

  let crashes = 0;
  let accepted = 0;
  const check = (bytes: Uint8Array) => {
    try {
      const token = grantedTokenFor(query, bytes);
      accepted++;
      // Accepting a damaged reply is only fine if it still carries this query's imprint and nonce.
      if (!readTimeStampReply(bytes).token) crashes++;
      void token;
    } catch (e) {
      if (!isYinxinError(e, 'time-not-available')) crashes++;
    }
  };
  for (let cut = 0; cut < reply.length; cut += Math.max(1, Math.floor(reply.length / 200))) check(reply.subarray(0, cut));
  for (let n = 0; n < 3000; n++) {
    const mutated = new Uint8Array(reply);
    const at = Math.floor(Math.random() * mutated.length);
    mutated[at] = n % 3 === 0 ? 0xff : n % 3 === 1 ? 0x00 : mutated[at] ^ (1 << (n % 8));
    check(mutated);
  }
  t.equal(crashes, 0, 'no error other than time-not-available');
  t.ok(accepted < 3000, `only mutations outside the checked fields pass (${accepted})`);
});
