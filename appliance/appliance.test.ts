/**
 * The appliance as a user runs it: `yinxin start` in a child process on a fresh data directory,
 * then restarts, faults and refusals. Ports are 0 (the OS picks); the banner says which.
 */
import { spawn, type ChildProcess } from 'node:child_process';
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

t.test('first start creates everything, serves health and metrics, and shuts down cleanly', async (t) => {
  const s = await start({ YINXIN_DATA: data });
  t.ok(s.password, 'the bootstrap password is printed on first start');
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
