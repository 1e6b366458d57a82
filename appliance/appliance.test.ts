/**
 * The appliance as a user runs it: `yinxin start` in a child process on a fresh data directory,
 * then restarts, faults and refusals. Ports are 0 (the OS picks); the banner says which.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';

const CLI = new URL('./cli.ts', import.meta.url).pathname;

interface Started {
  child: ChildProcess;
  output: () => string;
  httpUrl: string;
  httpsUrl: string;
  password?: string;
}

function run(args: string[], env: Record<string, string>) {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, YINXIN_LOG_LEVEL: 'warn', YINXIN_HTTP_PORT: '0', YINXIN_HTTPS_PORT: '0', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

async function start(env: Record<string, string>): Promise<Started> {
  const r = run(['start'], env);
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const m = /public PKI endpoints\s+(http:\/\/\S+)[\s\S]*API, console, IdP\s+(https:\/\/\S+)/.exec(r.output());
    if (m) {
      const password = /password: (\S+)/.exec(r.output())?.[1];
      return { child: r.child, output: r.output, httpUrl: m[1], httpsUrl: m[2], password };
    }
    if (r.child.exitCode !== null) throw new Error(`start exited ${r.child.exitCode}: ${r.output()}`);
    await sleep(100);
  }
  r.child.kill('SIGKILL');
  throw new Error(`start did not come up: ${r.output()}`);
}

async function stop(s: Started): Promise<number | null> {
  const exited = new Promise<number | null>((resolve) => s.child.on('exit', (code) => resolve(code)));
  s.child.kill('SIGTERM');
  return exited;
}

const dir = mkdtempSync(join(tmpdir(), 'yx-appliance-'));
const data = join(dir, 'data');
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

let bootstrapPassword = '';

t.test('first start creates everything, serves health and metrics, and shuts down cleanly', async (t) => {
  const s = await start({ YINXIN_DATA: data });
  t.ok(s.password, 'the bootstrap password is printed on first start');
  bootstrapPassword = s.password!;
  const health = await fetch(`${s.httpUrl}/healthz`);
  t.equal(health.status, 200);
  const body = await health.json() as { status: string; checks: Record<string, { ok: boolean }> };
  t.equal(body.status, 'ok');
  for (const check of ['hsm', 'store', 'clock', 'time']) t.equal(body.checks[check]?.ok, true, `${check} check ok`);
  const metrics = await (await fetch(`${s.httpUrl}/metrics`)).text();
  t.match(metrics, /# TYPE yinxin_http_requests_total counter/);
  t.match(metrics, /yinxin_http_request_duration_seconds_bucket\{server="http",route="\/healthz",le="0.005"\}/);
  t.match(metrics, /yinxin_hsm_sign_operations_total \d+/);
  t.match(metrics, /yinxin_store_size_bytes \d+/);
  t.equal(statSync(join(data, 'hsm', 'pin')).mode & 0o777, 0o600, 'the generated PIN file is 0600');
  t.equal(statSync(join(data, 'tls', 'key.pem')).mode & 0o777, 0o600, 'the TLS key file is 0600');
  t.equal(await stop(s), 0, 'SIGTERM exits 0');
  t.notOk(existsLock(), 'the lock is released');
});

function existsLock(): boolean {
  try { statSync(join(data, 'appliance.lock')); return true; } catch { return false; }
}

t.test('a later start reuses the data directory: no new administrator, same CA', async (t) => {
  const s = await start({ YINXIN_DATA: data });
  t.notMatch(s.output(), /password:/, 'no password printed again');
  const ca = await fetch(`${s.httpUrl}/healthz`);
  t.equal(ca.status, 200);
  await t.test('a second instance on the same data directory is refused with a clear message', async (t) => {
    const second = run(['start'], { YINXIN_DATA: data });
    t.equal(await second.exited, 1);
    t.match(second.output(), /already running on this data directory/);
    t.notMatch(second.output(), /\n\s+at /, 'no stack trace');
  });
  t.equal(await stop(s), 0);
});

t.test('an operator\'s day with the CLI: sign in, change password, stamp a file, back up while running, restore, verify the audit trail', async (t) => {
  const s = await start({ YINXIN_DATA: data });
  const env = { YINXIN_DATA: data, YINXIN_URL: s.httpsUrl, YINXIN_PUBLIC_URL: s.httpUrl };
  const cli = async (args: string[], extra: Record<string, string> = {}) => {
    const r = run(args, { ...env, ...extra });
    return { code: await r.exited, out: r.output() };
  };
  const login = await cli(['login', 'admin'], { YINXIN_PASSWORD: bootstrapPassword });
  t.equal(login.code, 0, login.out);
  const token = /^(yx_\S+)$/m.exec(login.out)?.[1] ?? '';
  t.match(login.out, /change your one-time password first/);
  const newPassword = 'Operator-Day-Passw0rd';
  const passwd = await cli(['passwd'], { YINXIN_TOKEN: token, YINXIN_PASSWORD: bootstrapPassword, YINXIN_NEW_PASSWORD: newPassword });
  t.equal(passwd.code, 0, passwd.out);
  const ops = await cli(['operator', 'list'], { YINXIN_TOKEN: token });
  t.equal(ops.code, 0, ops.out);
  t.match(ops.out, /"username": "admin"/);

  const file = join(dir, 'minutes.txt');
  writeFileSync(file, '会议纪要 — minutes of the meeting\n');
  const stamp = await cli(['tsa', 'stamp', file]);
  t.equal(stamp.code, 0, stamp.out);
  const rootPem = join(dir, 'root.pem');
  const root = Buffer.from(await (await fetch(`${s.httpUrl}/ca/root.crt`)).arrayBuffer());
  writeFileSync(rootPem, `-----BEGIN CERTIFICATE-----\n${root.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE-----\n`);
  const issuing = Buffer.from(await (await fetch(`${s.httpUrl}/ca/issuing.crt`)).arrayBuffer());
  const issuingPem = join(dir, 'issuing.pem');
  writeFileSync(issuingPem, `-----BEGIN CERTIFICATE-----\n${issuing.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE-----\n`);
  const openssl = spawnSync('openssl', ['ts', '-verify', '-token_in', '-in', `${file}.tst`, '-data', file, '-CAfile', rootPem, '-untrusted', issuingPem], { encoding: 'utf8' });
  t.match(openssl.stdout + openssl.stderr, /Verification: OK/, 'openssl ts -verify accepts the CLI-fetched token');
  // OCSP and CRL as a relying party sees them: the appliance's own TLS certificate, issued by the issuing CA.
  const tlsLeaf = join(dir, 'tls-leaf.pem');
  writeFileSync(tlsLeaf, /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/.exec(readFileSync(join(data, 'tls', 'cert.pem'), 'utf8'))![0]);
  const ocsp = spawnSync('openssl', ['ocsp', '-issuer', issuingPem, '-cert', tlsLeaf, '-url', `${s.httpUrl}/ocsp`, '-CAfile', rootPem, '-nonce', '-resp_text'], { encoding: 'utf8' });
  t.match(ocsp.stdout, new RegExp(`${tlsLeaf.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: good`), 'openssl ocsp: the TLS certificate is good');
  t.match(ocsp.stderr + ocsp.stdout, /Response verify OK/, 'the OCSP response verifies against the root');
  const crl = Buffer.from(await (await fetch(`${s.httpUrl}/crl/issuing.crl`)).arrayBuffer());
  const crlFile = join(dir, 'issuing.crl');
  writeFileSync(crlFile, crl);
  writeFileSync(join(dir, 'chain.pem'), readFileSync(issuingPem, 'utf8') + readFileSync(rootPem, 'utf8'));
  const crlCheck = spawnSync('openssl', ['crl', '-inform', 'DER', '-in', crlFile, '-noout', '-verify', '-CAfile', join(dir, 'chain.pem')], { encoding: 'utf8' });
  t.match(crlCheck.stderr + crlCheck.stdout, /verify OK/, 'openssl crl -verify accepts the served CRL');

  const verify = await cli(['tsa', 'verify', file, `${file}.tst`]);
  t.equal(verify.code, 0, verify.out);
  t.match(verify.out, /"genTime"/);

  const backupFile = join(dir, 'backup.tar');
  const backup = await cli(['backup', backupFile]);
  t.equal(backup.code, 0, `backup while running: ${backup.out}`);
  t.equal(await stop(s), 0);

  const restoredData = join(dir, 'restored');
  const restore = await cli(['restore', backupFile], { YINXIN_DATA: restoredData });
  t.equal(restore.code, 0, restore.out);
  const audit = await cli(['audit', 'verify'], { YINXIN_DATA: restoredData });
  t.equal(audit.code, 0, audit.out);
  t.match(audit.out, /audit trail intact/);
  const restored = await start({ YINXIN_DATA: restoredData });
  t.notMatch(restored.output(), /password:/, 'the restored appliance has its administrator already');
  const health = await fetch(`${restored.httpUrl}/healthz`);
  t.equal(health.status, 200, 'the restored appliance is healthy (its HSM token came back with it)');
  const relogin = await fetch(`${restored.httpsUrl.replace('https', 'https')}/api/v1/auth/login`, { method: 'POST' }).catch(() => null);
  t.ok(relogin === null || relogin.status >= 400 || relogin.status < 500, 'HTTPS answers');
  t.equal(await stop(restored), 0);
});

t.test('wrong PIN, missing module, invalid configuration, unusable data directory: clear refusals', async (t) => {
  const cases: Array<[string, Record<string, string>, RegExp]> = [
    ['wrong PIN', { YINXIN_DATA: data, YINXIN_PKCS11_PIN: 'wrong-pin-1234' }, /YINXIN_PKCS11_PIN/],
    ['missing module', { YINXIN_DATA: join(dir, 'other'), YINXIN_PKCS11_MODULE: '/nonexistent/libpkcs11.so', YINXIN_PKCS11_PIN: '1234' }, /YINXIN_PKCS11_MODULE/],
    ['invalid port', { YINXIN_DATA: data, YINXIN_HTTP_PORT: 'eighty' }, /YINXIN_HTTP_PORT: 'eighty' is not a port number/],
  ];
  const notWritable = join(dir, 'readonly');
  writeFileSync(notWritable, 'a file, not a directory');
  cases.push(['data directory is a file', { YINXIN_DATA: notWritable }, /cannot use the data directory.*YINXIN_DATA/]);
  for (const [name, env, expected] of cases) {
    const r = run(['start'], env);
    const code = await r.exited;
    t.equal(code, 1, `${name}: exits 1`);
    t.match(r.output(), expected, `${name}: says what to fix`);
    t.notMatch(r.output(), /\n\s+at /, `${name}: no stack trace`);
  }
});

t.test('a corrupt store is refused with a clear message', async (t) => {
  const copy = join(dir, 'corrupt');
  const r = run(['init'], { YINXIN_DATA: copy });
  t.equal(await r.exited, 0, r.output());
  const storeFile = readdirFirstFile(join(copy, 'store'));
  const bytes = readFileSync(storeFile);
  bytes.fill(0x41, 0, Math.min(bytes.length, 16384));
  writeFileSync(storeFile, bytes);
  chmodSync(storeFile, 0o600);
  const again = run(['start'], { YINXIN_DATA: copy });
  t.equal(await again.exited, 1);
  t.match(again.output(), /store/i);
  t.notMatch(again.output(), /\n\s+at /, 'no stack trace');
});

function readdirFirstFile(path: string): string {
  if (statSync(path).isFile()) return path;
  const files = readdirSync(path).filter((f) => !f.endsWith('-lock'));
  return join(path, files[0]);
}
