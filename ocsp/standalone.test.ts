/**
 * `yinxin ocsp` as its own process: the appliance (this test) writes the LMDB store and keeps
 * its keys in a SoftHSM2 token; a child process runs startStandaloneResponder on the same data
 * directory, store read-only, token shared. openssl sees issuance and revocation through it (the
 * revocation within a second, through the status-change polling), and it keeps answering while
 * the writer is closed (the CA restarting).
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { systemClock } from '../common/clock.ts';
import { toPem } from '../common/pem.ts';
import { openPkcs11KeyStore } from '../hsm/pkcs11.ts';
import { prepareSoftHsmToken } from '../hsm/softhsm.ts';
import { openLmdbStore } from '../store/lmdb.ts';
import { CertificateAuthority } from '../ca/authority.ts';
import { TableAuditLog } from '../ca/test-support.ts';
import { ensureOcspSigners } from './signers.ts';
import { runAsync } from './testing.ts';

const dir = mkdtempSync(join(tmpdir(), 'yinxin-ocsp-standalone-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const PIN = 'standalone-test-pin';
const token = await prepareSoftHsmToken({ dir: join(dir, 'hsm'), pin: PIN, label: 'yinxin-ocsp-test' });
const keys = await openPkcs11KeyStore({ module: token.module, tokenLabel: 'yinxin-ocsp-test', pin: PIN, sessionPool: 0 });
t.teardown(() => keys.close());
const writer = openLmdbStore(join(dir, 'store'));
const audit = new TableAuditLog(writer, systemClock);
const authority = await CertificateAuthority.open({ store: writer, keys, audit, clock: systemClock, options: { baseUrl: 'http://127.0.0.1:8080' } });
await authority.initialize();
await ensureOcspSigners({ authority, keys, store: writer });
const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const cert = await authority.issue({ ca: 'issuing', profile: 'device', subject: [{ type: 'CN', value: 'standalone' }], publicKeyInfo: new Uint8Array(publicKey.export({ type: 'spki', format: 'der' })) }, { actor: 'operator:test' });
const f = (name: string, content: string) => { const p = join(dir, name); writeFileSync(p, content); return p; };
const certFile = f('cert.pem', toPem(cert.der, 'CERTIFICATE'));
const issuing = f('issuing.pem', toPem(authority.caCertificate('issuing'), 'CERTIFICATE'));
const root = f('root.pem', toPem(authority.caCertificate('root'), 'CERTIFICATE'));
const chain = f('chain.pem', toPem(authority.caCertificate('root'), 'CERTIFICATE') + toPem(authority.caCertificate('issuing'), 'CERTIFICATE'));

// The child: what `yinxin ocsp` runs.
const here = resolve(import.meta.dirname, '..');
const main = f('standalone-main.ts', `
import { startStandaloneResponder } from '${here}/ocsp/standalone.ts';
import { prepareSoftHsmToken } from '${here}/hsm/softhsm.ts';
import { openPkcs11KeyStore } from '${here}/hsm/pkcs11.ts';
const dir = ${JSON.stringify(dir)};
const r = await startStandaloneResponder({ dataDir: dir, host: '127.0.0.1', port: 0, openKeyStore: async () => {
  const token = await prepareSoftHsmToken({ dir: dir + '/hsm', pin: ${JSON.stringify(PIN)}, label: 'yinxin-ocsp-test' });
  return openPkcs11KeyStore({ module: token.module, tokenLabel: 'yinxin-ocsp-test', pin: ${JSON.stringify(PIN)} });
} });
console.log('LISTENING ' + r.url);
process.on('SIGTERM', () => { r.close().then(() => process.exit(0)); });
`);
const child = spawn(process.execPath, [main], { stdio: ['ignore', 'pipe', 'inherit'] });
t.teardown(() => { child.kill('SIGTERM'); });
let childFailure = '';
const url = await new Promise<string>((resolveUrl) => {
  let out = '';
  child.stdout.on('data', (d) => {
    out += d.toString();
    const m = /LISTENING (\S+)/.exec(out);
    if (m) resolveUrl(m[1]);
  });
  child.on('exit', (code, signal) => {
    childFailure = `the standalone responder process exited (code ${code}, signal ${signal})`;
    resolveUrl('');
  });
});
const standalone = { url };
// Regression: the child used to die with SIGSEGV (an lmdb-js cursor walked across an await after
// its read transaction was renewed); store/lmdb.ts now reads ranges in synchronous chunks.
t.test('the standalone process starts beside the writer and sees its store', async (t) => {
  t.equal(childFailure, '', 'the standalone responder process is running');
  t.ok(url, 'it said where it listens');
  const health = await (await fetch(`${url}/healthz`)).json() as { checks: { issuers: string[] } };
  t.ok(health.checks.issuers.length > 0, 'the read-only process sees the writer\'s issuers');
});
const ask = () => runAsync('openssl', ['ocsp', '-url', `${standalone.url}/ocsp`, '-issuer', issuing, '-cert', certFile, '-CAfile', root, '-verify_other', chain, '-resp_text']);

t.test('the read-only responder answers from the writer\'s store', async (t) => {
  const good = await ask();
  t.match(good.out, 'Response verify OK');
  t.match(good.out, /: good/);
  const health = await fetch(`${standalone.url}/healthz`);
  t.equal(health.status, 200);
  const body = await health.json() as { status: string; checks: { issuers: string[] } };
  t.equal(body.status, 'ok');
  t.same([...body.checks.issuers].sort(), ['issuing', 'root']);
  const other = await fetch(`${standalone.url}/api/v1/certificates`);
  t.equal(other.status, 404, 'serves only /ocsp and /healthz');
});

t.test('a revocation by the writer is visible within a second', async (t) => {
  await authority.revoke({ ca: 'issuing', serial: cert.serial, reason: 1 }, { actor: 'operator:test' });
  const started = Date.now();
  let r = await ask();
  while (!/: revoked/.test(r.out) && Date.now() - started < 3000) r = await ask();
  const elapsed = Date.now() - started;
  t.match(r.out, /: revoked/);
  t.ok(elapsed < 1000, `visible after ${elapsed} ms`);
});

t.test('it keeps answering while the writer is closed', async (t) => {
  await writer.close();
  const r = await ask();
  t.match(r.out, 'Response verify OK');
  t.match(r.out, /: revoked/);
});
