/**
 * OCSP responder benchmark, side by side in one run on loopback with wrk:
 *   - yinxin's responder (bench/ocsp-server.ts yinxin: one Node process, pre-signed responses),
 *   - `openssl ocsp -index ... -multi 2` on the same CA and the same population
 *     (10,000 certificates, 10% revoked), with its own delegated signer from the same issuing CA,
 *   - a bare fastify route returning a fixed 500-byte body (the HTTP stack's ceiling).
 * POST without nonce (every certificate in turn) and with a nonce (signed live).
 *
 *   node bench/ocsp.ts            (OCSP_BENCH_SECONDS=10, OCSP_BENCH_CONNECTIONS=64)
 *
 * Needs wrk (Debian package wrk) and openssl. Prints a table, the ratios and the targets.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { startBenchServer } from './proc.ts';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const SECONDS = Number(process.env.OCSP_BENCH_SECONDS ?? 10);
const CONNECTIONS = Number(process.env.OCSP_BENCH_CONNECTIONS ?? 64);
const here = import.meta.dirname;
const dir = mkdtempSync(join(tmpdir(), 'yinxin-bench-ocsp-'));
const children: ChildProcess[] = [];
let openssl: ChildProcess | undefined;
const cleanup = () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  // openssl ocsp -multi forks workers that outlive a SIGTERM to their parent: end the whole group.
  stopOpenssl();
  rmSync(dir, { recursive: true, force: true });
};
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

if (spawnSync('wrk', ['--version']).error) {
  console.error('wrk is not installed (Debian: apt-get install wrk)');
  process.exit(2);
}

function startNode(args: string[]): Promise<number> {
  const { child, port } = startBenchServer(join(here, 'ocsp-server.ts'), args);
  children.push(child);
  return port;
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

const lua = join(dir, 'post.lua');
writeFileSync(lua, `
local bodies = {}
for line in io.lines(os.getenv("OCSP_REQUESTS")) do
  bodies[#bodies + 1] = (line:gsub('..', function(cc) return string.char(tonumber(cc, 16)) end))
end
local i = math.random(#bodies)
local headers = { ["Content-Type"] = "application/ocsp-request" }
-- openssl ocsp answers HTTP/1.0 and closes: ask for that, so wrk reconnects instead of waiting.
if os.getenv("OCSP_CLOSE") == "1" then headers["Connection"] = "close" end
request = function()
  i = i + 1
  if i > #bodies then i = 1 end
  return wrk.format("POST", os.getenv("OCSP_PATH"), headers, bodies[i])
end
`);

// openssl ocsp (HTTP/1.0, one request per connection) only works with wrk's static request path
// (wrk.body): it gets one certificate's request, read from a DER file, over and over.
const staticLua = join(dir, 'static.lua');
writeFileSync(staticLua, `
local f = io.open(os.getenv("OCSP_BODY"), "rb"); local body = f:read("*a"); f:close()
wrk.method = "POST"; wrk.body = body
wrk.headers["Content-Type"] = "application/ocsp-request"; wrk.headers["Connection"] = "close"
`);

interface Result { rps: number; p50: number; p99: number; errors: string }

function ms(text: string): number {
  const m = /([\d.]+)(us|ms|s)/.exec(text);
  if (!m) return NaN;
  return Number(m[1]) * (m[2] === 'us' ? 0.001 : m[2] === 's' ? 1000 : 1);
}

async function wrk(port: number, requests: string, seconds = SECONDS, close = false): Promise<Result> {
  // openssl's responder accepts one connection at a time per worker: 64 connecting at once get nothing back.
  const args = ['-t2', `-c${close ? Math.min(CONNECTIONS, 8) : CONNECTIONS}`, `-d${seconds}s`, '--latency', '-s', close ? staticLua : lua, `http://127.0.0.1:${port}${close ? '/' : '/ocsp'}`];
  const body = join(dir, requests === plain ? 'sample.der' : 'sample-nonce.der');
  const child = spawn('wrk', args, { env: { ...process.env, OCSP_REQUESTS: requests, OCSP_BODY: body, OCSP_CLOSE: close ? '1' : '0', OCSP_PATH: close ? '/' : '/ocsp' } });
  let out = '';
  child.stdout.on('data', (d) => { out += d.toString(); });
  child.stderr.on('data', (d) => { out += d.toString(); });
  await new Promise((r) => child.on('close', r));
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  const p50 = ms(/\s50%\s+(\S+)/.exec(out)?.[1] ?? '');
  const p99 = ms(/\s99%\s+(\S+)/.exec(out)?.[1] ?? '');
  const errors = [/Non-2xx or 3xx responses: \d+/.exec(out)?.[0], /Socket errors: .*/.exec(out)?.[0]].filter(Boolean).join('; ');
  return { rps, p50, p99, errors };
}

function checkAnswer(port: number, what: string): void {
  const r = spawnSync('openssl', ['ocsp', '-reqin', join(dir, 'sample.der'), '-url', `http://127.0.0.1:${port}${what === 'yinxin' ? '/ocsp' : '/'}`,
    '-CAfile', join(dir, 'root.pem'), '-verify_other', join(dir, 'chain.pem'), '-resp_text'], { encoding: 'utf8' });
  const out = r.stdout + r.stderr;
  if (!/Response verify OK/.test(out) || !/Cert Status: revoked/.test(out)) throw new Error(`${what} did not answer correctly:\n${out}`);
}

const plain = join(dir, 'requests.hex');
const nonce = join(dir, 'requests-nonce.hex');
console.log(`building the CA and ${process.env.OCSP_BENCH_CERTS ?? 10_000} certificates ...`);
const yinxinPort = await startNode(['yinxin', dir]);
const barePort = await startNode(['bare']);
// openssl's -multi workers can hang on a connection wrk drops at the end of a run: a fresh
// responder for each openssl measurement.
async function startOpenssl(): Promise<number> {
  stopOpenssl();
  const port = await freePort();
  openssl = spawn('openssl', ['ocsp', '-index', join(dir, 'index.txt'), '-port', String(port), '-rsigner', join(dir, 'openssl-ocsp.pem'),
    '-rkey', join(dir, 'openssl-ocsp.key'), '-CA', join(dir, 'issuing.pem'), '-multi', '2', '-nmin', '60', '-ignore_err'], { stdio: 'ignore' });
  for (let attempt = 0; ; attempt++) {
    await new Promise((r) => setTimeout(r, 300));
    try {
      checkAnswer(port, 'openssl ocsp');
      return port;
    } catch (e) {
      if (attempt >= 30) throw e;
    }
  }
}
function stopOpenssl(): void {
  if (openssl?.pid && openssl.exitCode === null) {
    spawnSync('pkill', ['-KILL', '-P', String(openssl.pid)]);
    openssl.kill('SIGKILL');
  }
}
checkAnswer(yinxinPort, 'yinxin');

console.log('warming up (fills yinxin\'s pre-signed responses) ...');
await wrk(yinxinPort, plain, 5);
await wrk(barePort, plain, 3);

const rows: Array<[string, Result]> = [];
for (const [name, port, requests] of [
  ['bare fastify, fixed 500-byte body', barePort, plain],
  ['yinxin POST, no nonce', yinxinPort, plain],
  ['openssl ocsp -multi 2, no nonce', 0, plain],
  ['yinxin POST, nonce (signed live)', yinxinPort, nonce],
  ['openssl ocsp -multi 2, nonce', 0, nonce],
] as const) {
  console.log(`measuring ${name} ...`);
  const target = port || await startOpenssl();
  rows.push([name, await wrk(target, requests, SECONDS, port === 0)]);
  if (port === 0) stopOpenssl();
}
const stats = await (await fetch(`http://127.0.0.1:${yinxinPort}/stats`)).json() as { byStatus: Record<string, number>; cacheHits: number; signed: number };

const pad = (s: string, n: number) => s.padEnd(n);
console.log(`\n${CONNECTIONS} connections, ${SECONDS} s each, wrk -t2 on loopback, ${readFileSync(plain, 'utf8').trim().split('\n').length} certificates (10% revoked)\n`);
console.log(`${pad('target', 38)} ${pad('responses/s', 12)} ${pad('p50 ms', 8)} ${pad('p99 ms', 8)} errors`);
for (const [name, r] of rows) console.log(`${pad(name, 38)} ${pad(r.rps.toFixed(0), 12)} ${pad(r.p50.toFixed(2), 8)} ${pad(r.p99.toFixed(2), 8)} ${r.errors || '-'}`);
const [bare, yinxin, ossl, yinxinNonce] = rows.map(([, r]) => r);
console.log('\nratios and targets:');
const target = (what: string, value: number, goal: number, unit = 'x') => console.log(`  ${pad(what, 52)} ${value.toFixed(2)}${unit}  (target ${goal}${unit}) ${value >= goal ? 'MET' : 'NOT MET'}`);
if (ossl.rps > 0) target('yinxin / openssl, POST without nonce', yinxin.rps / ossl.rps, 2.5);
else console.log('  yinxin / openssl: openssl ocsp answered nothing under wrk here; NOT MEASURED');
target('yinxin / bare fastify', yinxin.rps / bare.rps, 0.7);
console.log(`  ${pad('yinxin p99 latency, POST without nonce', 52)} ${yinxin.p99.toFixed(2)} ms (target <= 5 ms) ${yinxin.p99 <= 5 ? 'MET' : 'NOT MET'}`);
console.log(`  ${pad('yinxin with nonce (signed live), responses/s', 52)} ${yinxinNonce.rps.toFixed(0)}  (target >= 3600) ${yinxinNonce.rps >= 3600 ? 'MET' : 'NOT MET'}`);
console.log(`\nyinxin responder: ${stats.cacheHits} fast-path hits, ${stats.signed} signatures, statuses ${JSON.stringify(stats.byStatus)}`);
process.exit(0);
