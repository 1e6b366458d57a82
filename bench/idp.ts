/**
 * IdP benchmark (issue 6), against Keycloak's published sizing figures
 * (https://www.keycloak.org/high-availability/concepts-memory-and-cpu-sizing):
 *   - complete password logins (authorization request, login page, form post, code exchange with
 *     PKCE) with Keycloak's Argon2id parameters (m=7 MiB, t=5, p=1; the appliance's default):
 *     Keycloak 15 per vCPU;
 *   - client-credentials grants and refresh-token grants over HTTPS keep-alive: Keycloak 120 per vCPU
 *     each (it measures new TLS connections);
 *   - RSS of the whole appliance holding 10,000 active SSO sessions: Keycloak 1,250 MB per pod.
 *     Read from /proc as the process stands, never after a GC forced by the benchmark: right after
 *     the load, right after storing the sessions, and settled (IDP_BENCH_IDLE=20 s later, time for
 *     V8's memory reducer); plus the peak (VmHWM) over the whole run, startup and load included.
 * The appliance runs in a child process (bench/idp-server.ts: startAppliance, every service, the
 * SoftHSM2 token and LMDB, with the Node flags and environment of `npm start`: appliance/bin/
 * runtime.js), this process is the relying party (openid-client). "Per CPU-second"
 * divides by the CPU time the appliance process used (user + system, every thread, from /proc:
 * Argon2 runs on libuv's pool), so it does not depend on the number of cores or on the client.
 *
 *   node bench/idp.ts [seconds-per-phase=5]     (IDP_BENCH_NODE_ARGS: more Node flags for the appliance)
 */
import { fork } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import * as client from 'openid-client';
import { NODE_ARGS, runtimeEnv } from '../appliance/bin/runtime.js';
import { Browser, formOf, trustingFetch } from '../idp/test-support.ts';
import type { Memory } from './idp-server.ts';
import { cpuSecondsOf } from './proc.ts';

const seconds = Number(process.argv[2] ?? 5);
const idleSeconds = Number(process.env.IDP_BENCH_IDLE ?? 20);
const USERNAME = 'bench';
const PASSWORD = 'Sunny-Day-2024!';

const port = await new Promise<number>((resolve) => {
  const s = createServer().listen(0, '127.0.0.1', () => {
    const p = (s.address() as { port: number }).port;
    s.close(() => resolve(p));
  });
});
const child = fork(join(import.meta.dirname, 'idp-server.ts'), [USERNAME, PASSWORD], {
  // Started as `npm start` starts the appliance.
  env: runtimeEnv(join(import.meta.dirname, '..'), { ...process.env, IDP_BENCH_PORT: String(port) }),
  execArgv: [...NODE_ARGS, ...(process.env.IDP_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean)],
  stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
});
process.on('exit', () => { if (child.exitCode === null) child.kill('SIGKILL'); });
const nextMessage = <T>() => new Promise<T>((resolve, reject) => {
  child.once('message', (m) => resolve(m as T));
  child.once('exit', (code) => reject(new Error(`bench/idp-server.ts exited with ${code}`)));
});
const { ready } = await nextMessage<{ ready: { issuer: string; clientSecret: string; trust: string[] } }>();
const fetch = trustingFetch(ready.trust);
const config = await client.discovery(new URL(ready.issuer), 'bench', ready.clientSecret, undefined, { [client.customFetch]: fetch as unknown as client.CustomFetch });

const applianceCpuSeconds = () => cpuSecondsOf(child.pid!);

async function measure(name: string, concurrency: number, once: (worker: number) => Promise<void>): Promise<{ name: string; perSecond: number; perCpuSecond: number; n: number }> {
  const end = Date.now() + seconds * 1000;
  const cpu0 = applianceCpuSeconds();
  const t0 = performance.now();
  let n = 0;
  await Promise.all(Array.from({ length: concurrency }, async (_, w) => {
    while (Date.now() < end) {
      await once(w);
      n++;
    }
  }));
  const wall = (performance.now() - t0) / 1000;
  return { name, n, perSecond: n / wall, perCpuSecond: n / (applianceCpuSeconds() - cpu0) };
}

async function passwordLogin(): Promise<string> {
  const browser = new Browser(fetch);
  const verifier = client.randomPKCECodeVerifier();
  const url = client.buildAuthorizationUrl(config, { redirect_uri: 'https://bench.example/cb', scope: 'openid', code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' });
  const page = await browser.follow(url.href, ready.issuer);
  const done = await browser.follow(new URL(formOf(page.page!).action, ready.issuer).href, ready.issuer, { form: { login: USERNAME, password: PASSWORD } });
  if (!done.redirect) throw new Error(`the login did not complete: ${done.status} ${done.page?.slice(0, 200)}`);
  const tokens = await client.authorizationCodeGrant(config, new URL(done.redirect), { pkceCodeVerifier: verifier });
  return tokens.refresh_token!;
}

const results = [];
await passwordLogin(); // warm-up
results.push({ ...(await measure('password logins (full flow, Argon2id m=7MiB t=5)', 4, async () => { await passwordLogin(); })), keycloak: 15, target: 30 });
results.push({ ...(await measure('client-credentials grants', 16, async () => { await client.clientCredentialsGrant(config, {}); })), keycloak: 120, target: 1000 });
const chains = await Promise.all(Array.from({ length: 16 }, () => passwordLogin()));
results.push({ ...(await measure('refresh-token grants (rotating)', 16, async (w) => { chains[w] = (await client.refreshTokenGrant(config, chains[w])).refresh_token!; })), keycloak: 120, target: 500 });

// 10,000 active SSO sessions, stored as the provider stores them, on top of the sessions the load made.
child.send({ sessions: 0 });
const afterLoad = (await nextMessage<{ memory: Memory }>()).memory;
child.send({ sessions: 10_000 });
const withSessions = (await nextMessage<{ memory: Memory }>()).memory;
// V8 gives back the heap it grew under load only once its memory reducer sees the process idle
// (common/memory-reducer.ts), so the settled figure comes after some time without requests.
child.send({ idleSeconds });
const settled = (await nextMessage<{ memory: Memory }>()).memory;
child.send({ stop: true });

const mib = (b: number) => (b / 1048576).toFixed(0);
console.log('| operation | n | per second (wall) | per CPU-second of the appliance | Keycloak per vCPU | ratio | target |');
console.log('|---|---|---|---|---|---|---|');
for (const r of results) console.log(`| ${r.name} | ${r.n} | ${r.perSecond.toFixed(1)} | ${r.perCpuSecond.toFixed(1)} | ${r.keycloak} | ${(r.perCpuSecond / r.keycloak).toFixed(1)}x | >= ${r.target} |`);
console.log(`| RSS of the whole appliance with ${settled.sessions.toLocaleString('en')} more SSO sessions, settled ${idleSeconds} s after the load | | ${mib(settled.map.rss)} MiB (right after storing the sessions ${mib(withSessions.map.rss)}; right after the load ${mib(afterLoad.map.rss)}; peak of the run ${mib(settled.peakRss)}) | | 1,250 MB | ${(1250 / (settled.map.rss / 1048576)).toFixed(1)}x smaller | <= 300 MiB |`);
console.log('');
console.log('| RSS, MiB | total | node and libraries (file) | LMDB map (file) | V8 heap pages, every thread | malloc arenas | other | main-thread V8 heap resident / used |');
console.log('|---|---|---|---|---|---|---|---|');
for (const [when, m] of [['right after the load', afterLoad], ['right after storing the sessions', withSessions], [`settled (${idleSeconds} s idle)`, settled]] as const) {
  console.log(`| ${when} | ${mib(m.map.rss)} | ${mib(m.map.code)} | ${mib(m.map.lmdb)} | ${mib(m.map.v8Pages)} | ${mib(m.map.malloc)} | ${mib(m.map.other)} | ${mib(m.mainHeap.resident)} / ${mib(m.mainHeap.used)} |`);
}
console.log(`(${settled.threads} threads. ${settled.strippedTypeScript
  ? 'This start stripped TypeScript itself (the compile cache was cold): later starts hold less; run it again for their figure.'
  : 'TypeScript came from the compile cache (later starts, as `npm start` runs them).'})`);
