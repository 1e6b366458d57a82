/**
 * IdP benchmark (issue 6), against Keycloak's published sizing figures
 * (https://www.keycloak.org/high-availability/concepts-memory-and-cpu-sizing):
 *   - complete password logins (authorization request, login page, form post, code exchange with
 *     PKCE) with Keycloak's Argon2id parameters (m=7 MiB, t=5, p=1): Keycloak 15 per vCPU;
 *   - client-credentials grants and refresh-token grants over HTTPS keep-alive: Keycloak 120 per vCPU
 *     each (it measures new TLS connections);
 *   - RSS of the IdP process holding 10,000 active SSO sessions: Keycloak 1,250 MB per pod.
 * "Per core" divides by the CPU time the process used (user + system, all threads: Argon2 runs on
 * libuv's pool), so the figure does not depend on how many cores the machine has.
 * Signing uses the software key store (the HSM's ES256 rate, ~22,000/s, is far above these).
 *
 *   node bench/idp.ts [seconds-per-phase=5]
 */
import * as client from 'openid-client';
import { DEFAULT_ARGON2 } from '../auth/passwords.ts';
import { Browser, formOf, startTestIdp } from '../idp/test-support.ts';

const seconds = Number(process.argv[2] ?? 5);
const PASSWORD = 'Sunny-Day-2024!';

const idp = await startTestIdp({ argon2: DEFAULT_ARGON2 });
const dir = idp.idp.directory;
const actor = { name: 'bench' };
await dir.createUser(actor, { identityCode: '11010519491231002X', name: 'Bench', username: 'bench', password: PASSWORD });
const { clientSecret } = await dir.createApplication(actor, { clientId: 'bench', name: 'Bench', redirectUris: ['https://bench.example/cb'], grantTypes: ['authorization_code', 'refresh_token', 'client_credentials'] });
const config = await client.discovery(new URL(idp.issuer), 'bench', clientSecret, undefined, { [client.customFetch]: idp.fetch as unknown as client.CustomFetch });

async function measure(name: string, concurrency: number, once: (worker: number) => Promise<void>): Promise<{ name: string; perSecond: number; perCpuSecond: number; n: number }> {
  const end = Date.now() + seconds * 1000;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let n = 0;
  await Promise.all(Array.from({ length: concurrency }, async (_, w) => {
    while (Date.now() < end) {
      await once(w);
      n++;
    }
  }));
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  return { name, n, perSecond: n / wall, perCpuSecond: n / cpuSeconds };
}

async function passwordLogin(): Promise<string> {
  const browser = new Browser(idp.fetch);
  const verifier = client.randomPKCECodeVerifier();
  const url = client.buildAuthorizationUrl(config, { redirect_uri: 'https://bench.example/cb', scope: 'openid', code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' });
  const page = await browser.follow(url.href, idp.issuer);
  const done = await browser.follow(new URL(formOf(page.page!).action, idp.issuer).href, idp.issuer, { form: { login: 'bench', password: PASSWORD } });
  const tokens = await client.authorizationCodeGrant(config, new URL(done.redirect!), { pkceCodeVerifier: verifier });
  return tokens.refresh_token!;
}

const results = [];
results.push({ ...(await measure('password logins (full flow, Argon2id m=7MiB t=5)', 4, async () => { await passwordLogin(); })), keycloak: 15, target: 30 });
results.push({ ...(await measure('client-credentials grants', 16, async () => { await client.clientCredentialsGrant(config, {}); })), keycloak: 120, target: 1000 });
const chains = await Promise.all(Array.from({ length: 16 }, () => passwordLogin()));
results.push({ ...(await measure('refresh-token grants (rotating)', 16, async (w) => { chains[w] = (await client.refreshTokenGrant(config, chains[w])).refresh_token!; })), keycloak: 120, target: 500 });

// 10,000 active SSO sessions, stored as the provider stores them.
const Session = idp.idp.provider.Session;
const rssBefore = process.memoryUsage().rss;
for (let i = 0; i < 10_000; i += 500) {
  await Promise.all(Array.from({ length: 500 }, async () => {
    const s = new Session({ accountId: 'x', loginTs: Math.floor(Date.now() / 1000), authorizations: { bench: { sid: 'sid', grantId: 'g' } } });
    await s.save(3600);
  }));
}
globalThis.gc?.();
const rss = process.memoryUsage().rss;

console.log('| operation | n | per second (wall) | per CPU-second | Keycloak per vCPU | ratio | target |');
console.log('|---|---|---|---|---|---|---|');
for (const r of results) console.log(`| ${r.name} | ${r.n} | ${r.perSecond.toFixed(1)} | ${r.perCpuSecond.toFixed(1)} | ${r.keycloak} | ${(r.perCpuSecond / r.keycloak).toFixed(1)}x | >= ${r.target} |`);
console.log(`| RSS with 10,000 sessions (IdP process, LMDB-backed) | | ${(rss / 1048576).toFixed(0)} MiB (was ${(rssBefore / 1048576).toFixed(0)} MiB before the sessions) | | 1,250 MB | ${(1250 / (rss / 1048576)).toFixed(1)}x smaller | <= 300 MiB |`);
await idp.close();
