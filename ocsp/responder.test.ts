/**
 * The responder against tools we did not write: `openssl ocsp` (good, revoked with reason,
 * unknown, nonce, signature verified against the CA chain) and gnutls' `ocsptool`, for both CAs,
 * through a real listening server. Then revocation visibility through the status-change polling.
 */
import t from 'tap';
import { makeOcspFixture, runAsync, startResponder } from './testing.ts';

const fx = await makeOcspFixture();
t.teardown(() => fx.cleanup());
const server = await startResponder(fx);
t.teardown(() => server.close());

function ocsp(args: string[]) {
  return runAsync('openssl', ['ocsp', '-url', server.url, '-CAfile', fx.files.root, '-verify_other', fx.files.chain, '-resp_text', ...args]);
}

for (const [ca, issuerFile] of [['issuing', fx.files.issuing], ['root', fx.files.root]] as const) {
  t.test(`openssl ocsp: good, then revoked with its reason, for CA ${ca}`, async (t) => {
    const { record, file } = await fx.issue(ca, `device-${ca}`);
    const good = await ocsp(['-issuer', issuerFile, '-cert', file]);
    t.equal(good.code, 0, good.out);
    t.match(good.out, 'Response verify OK');
    t.match(good.out, new RegExp(`${file}: good`));
    t.match(good.out, /Responder Id: [0-9A-F]{40}/, 'responder identified by key hash');
    t.match(good.out, /Next Update:/);

    await fx.authority.revoke({ ca, serial: record.serial, reason: 1 }, { actor: 'operator:test' });
    const started = Date.now();
    let revoked = await ocsp(['-issuer', issuerFile, '-cert', file]);
    while (!/: revoked/.test(revoked.out) && Date.now() - started < 3000) revoked = await ocsp(['-issuer', issuerFile, '-cert', file]);
    t.ok(Date.now() - started < 1000, `revocation visible in ${Date.now() - started} ms`);
    t.match(revoked.out, 'Response verify OK');
    t.match(revoked.out, new RegExp(`${file}: revoked`));
    t.match(revoked.out, /Reason: keyCompromise/);
    t.match(revoked.out, /Revocation Time:/);
  });

  t.test(`openssl ocsp: a serial never issued by CA ${ca} is unknown`, async (t) => {
    const r = await ocsp(['-issuer', issuerFile, '-serial', '0x4b1d0000000000000000000000000001']);
    t.equal(r.code, 0, r.out);
    t.match(r.out, 'Response verify OK');
    t.match(r.out, /: unknown/);
  });
}

t.test('openssl ocsp -nonce: the nonce is echoed (signed live), and SHA-256 CertIDs are answered', async (t) => {
  const { file } = await fx.issue('issuing', 'nonce');
  const r = await ocsp(['-sha256', '-issuer', fx.files.issuing, '-cert', file, '-nonce']);
  t.equal(r.code, 0, r.out);
  t.match(r.out, 'Response verify OK');
  t.match(r.out, /OCSP Nonce:/);
  t.notMatch(r.out, /WARNING: no nonce in response/);
  t.match(r.out, /Hash Algorithm: sha256/);
  t.match(r.out, new RegExp(`${file}: good`));
});

t.test('several CertIDs in one request', async (t) => {
  const a = await fx.issue('issuing', 'multi-a');
  const b = await fx.issue('issuing', 'multi-b');
  await fx.authority.revoke({ ca: 'issuing', serial: b.record.serial, reason: 4 }, { actor: 'operator:test' });
  const r = await ocsp(['-issuer', fx.files.issuing, '-cert', a.file, '-cert', b.file]);
  t.equal(r.code, 0, r.out);
  t.match(r.out, 'Response verify OK');
  t.match(r.out, new RegExp(`${a.file}: good`));
  t.match(r.out, new RegExp(`${b.file}: revoked`));
  t.match(r.out, /Reason: superseded/);
});

t.test('ocsptool (gnutls) agrees', async (t) => {
  const { record, file } = await fx.issue('issuing', 'gnutls');
  const ask = () => runAsync('ocsptool', [`--ask=${server.url}`, '--load-issuer', fx.files.issuing, '--load-cert', file, '--load-trust', fx.files.issuing, '--no-nonce']);
  const good = await ask();
  t.match(good.out, /Certificate Status: good/, good.out);
  t.match(good.out, /Verifying OCSP Response: Success/);
  await fx.authority.revoke({ ca: 'issuing', serial: record.serial, reason: 3 }, { actor: 'operator:test' });
  await new Promise((r) => setTimeout(r, 500));
  const revoked = await ask();
  t.match(revoked.out, /Certificate Status: revoked/, revoked.out);
  t.match(revoked.out, /Verifying OCSP Response: Success/);
});
