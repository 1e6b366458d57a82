/**
 * YINXIN_PUBLIC_PROCESSES=2: `yinxin start` with a second process on the public port. Both
 * processes answer (their metrics show it), time stamps from both verify with openssl and keep
 * unique serials and one intact audit chain, a public process that dies is restarted, and
 * stopping the appliance stops it.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { toPem } from '../common/pem.ts';
import { buildTimeStampQuery, parseTimeStampResponse, verifyTimeStampToken } from '../tsa/client.ts';

const CLI = new URL('./cli.ts', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'yx-public-processes-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const env = { ...process.env, YINXIN_DATA: join(dir, 'data'), YINXIN_LOG_LEVEL: 'warn', YINXIN_HTTP_PORT: '0', YINXIN_HTTPS_PORT: '0', YINXIN_PUBLIC_PROCESSES: '2' };

/** One request on a connection of its own, so that the kernel may hand it to either process. */
function once(url: string, method = 'GET', body?: Uint8Array, type?: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, agent: false, headers: { connection: 'close', ...(type ? { 'content-type': type } : {}) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function childrenOf(pid: number): number[] {
  const out = spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).stdout;
  return out.split('\n').filter(Boolean).map(Number);
}

const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };

t.test('two processes serve the public port', async (t) => {
  const main = spawn(process.execPath, [CLI, 'start'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  main.stdout!.on('data', (d) => (out += d));
  main.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => main.on('exit', (code) => resolve(code)));
  t.teardown(() => { if (main.exitCode === null) main.kill('SIGKILL'); });
  let httpUrl = '';
  for (let i = 0; i < 600 && !httpUrl; i++) {
    httpUrl = /public PKI endpoints\s+(http:\/\/\S+)/.exec(out)?.[1] ?? '';
    if (main.exitCode !== null) throw new Error(out);
    await sleep(100);
  }
  t.ok(httpUrl, 'the appliance started');
  const workers = childrenOf(main.pid!);
  t.equal(workers.length, 1, 'one public process besides the main process');

  // Tokens over many connections land on both processes.
  const data = Buffer.from('minutes of the meeting');
  const tokens: Buffer[] = [];
  for (let i = 0; i < 60; i++) {
    const r = await once(`${httpUrl}/tsa`, 'POST', buildTimeStampQuery(data, { certReq: true, nonce: BigInt(i + 1) }).der, 'application/timestamp-query');
    t.equal(r.status, 200);
    tokens.push(r.body);
  }
  const rootDer = new Uint8Array((await once(`${httpUrl}/ca/root.crt`)).body);
  const issuingDer = new Uint8Array((await once(`${httpUrl}/ca/issuing.crt`)).body);
  const serials: string[] = [];
  for (const [i, reply] of tokens.entries()) {
    const info = await verifyTimeStampToken(parseTimeStampResponse(new Uint8Array(reply)).token!, data, { trustAnchors: [rootDer], intermediates: [issuingDer], nonce: BigInt(i + 1) });
    serials.push(info.serialNumber);
  }
  t.equal(new Set(serials).size, serials.length, 'every token verifies and has its own serial');
  // A public process sends its metrics to the main process every second: wait for the last ones.
  let metrics = '';
  const issuedBy = (process: string) => Number(new RegExp(`^yinxin_tsa_tokens_issued_total${process} (\\d+)$`, 'm').exec(metrics)?.[1] ?? 0);
  for (let i = 0; i < 50; i++) {
    metrics = (await once(`${httpUrl}/metrics`)).body.toString();
    if (issuedBy('') + issuedBy('\\{process="public-1"\\}') === 60) break;
    await sleep(100);
  }
  t.ok(issuedBy('') > 0, `the main process issued tokens (${issuedBy('')})`);
  t.ok(issuedBy('\\{process="public-1"\\}') > 0, `the public process issued tokens (${issuedBy('\\{process="public-1"\\}')})`);
  t.equal(issuedBy('') + issuedBy('\\{process="public-1"\\}'), 60, '/metrics counts every process once');

  // openssl verifies tokens of both processes (every tenth one).
  const root = join(dir, 'root.pem');
  const issuing = join(dir, 'issuing.pem');
  writeFileSync(root, toPem(rootDer, 'CERTIFICATE'));
  writeFileSync(issuing, toPem(issuingDer, 'CERTIFICATE'));
  writeFileSync(join(dir, 'document.txt'), data);
  for (let i = 0; i < tokens.length; i += 10) {
    writeFileSync(join(dir, 'reply.tsr'), tokens[i]);
    const v = spawnSync('openssl', ['ts', '-verify', '-data', join(dir, 'document.txt'), '-in', join(dir, 'reply.tsr'), '-CAfile', root, '-untrusted', issuing], { encoding: 'utf8' });
    t.match(v.stdout, /Verification: OK/, `token ${i} verifies`);
  }

  // A public process that dies is replaced; the port keeps answering meanwhile.
  // (Connections the kernel had already queued on the killed process's socket are reset: SO_REUSEPORT.)
  process.kill(workers[0], 'SIGKILL');
  for (let i = 0; i < 50 && alive(workers[0]); i++) await sleep(20);
  await sleep(200);
  for (let i = 0; i < 10; i++) t.equal((await once(`${httpUrl}/healthz`)).status, 200, 'the main process answers meanwhile');
  let replaced: number[] = [];
  for (let i = 0; i < 300; i++) {
    replaced = childrenOf(main.pid!);
    // Its metrics reach the main process once it serves.
    if (replaced.length === 1 && replaced[0] !== workers[0] && (await once(`${httpUrl}/metrics`)).body.includes('process="public-1"')) break;
    await sleep(100);
  }
  t.equal(replaced.length, 1, 'a new public process runs');
  t.not(replaced[0], workers[0]);

  main.kill('SIGTERM');
  t.equal(await exited, 0, 'the appliance stops cleanly');
  for (let i = 0; i < 50 && alive(replaced[0]); i++) await sleep(100);
  t.notOk(alive(replaced[0]), 'and its public process with it');

  const audit = spawnSync(process.execPath, [CLI, 'audit', 'verify'], { env, encoding: 'utf8' });
  t.equal(audit.status, 0, audit.stdout + audit.stderr);
  t.match(audit.stdout, /audit trail intact/, 'two writers kept one intact audit chain');
});
