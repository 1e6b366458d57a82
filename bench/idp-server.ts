/**
 * The appliance for bench/idp.ts, in a process of its own so that the figures are the server's
 * alone: startAppliance() as `yinxin start` runs it (every service, SoftHSM2 token, LMDB store,
 * HTTPS with a certificate from the issuing CA), plus one user and one application for the load.
 * Talks to its parent over IPC:
 *   -> { ready: { issuer, clientSecret, trust: [PEM...] } }
 *   <- { sessions: N }  stores N more SSO sessions as the provider stores them after a login
 *   -> { rss, heapUsed, sessions }  after a full GC
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../appliance/config.ts';
import { startAppliance } from '../appliance/server.ts';
import { toPem } from '../common/pem.ts';

const [username, password] = process.argv.slice(2);
const dir = mkdtempSync(join(tmpdir(), 'yinxin-bench-idp-'));
const config = loadConfig({ YINXIN_DATA: dir, YINXIN_LOG_LEVEL: 'silent', YINXIN_HTTP_PORT: '0', YINXIN_HTTPS_PORT: process.env.IDP_BENCH_PORT! }, '/');
const running = await startAppliance(config);
const { idp, authority } = running.appliance.services;
const actor = { name: 'bench' };
await idp.directory.createUser(actor, { identityCode: '11010519491231002X', name: 'Bench', username, password });
const { clientSecret } = await idp.directory.createApplication(actor, {
  clientId: 'bench', name: 'Bench', redirectUris: ['https://bench.example/cb'], grantTypes: ['authorization_code', 'refresh_token', 'client_credentials'],
});
let sessions = 0;
process.on('message', async (m: { sessions?: number; stop?: true; idleSeconds?: number }) => {
  if (m.idleSeconds) await new Promise((r) => setTimeout(r, m.idleSeconds! * 1000));
  if (m.sessions !== undefined) {
    const Session = idp.provider.Session;
    for (let i = 0; i < m.sessions; i += 500) {
      await Promise.all(Array.from({ length: Math.min(500, m.sessions - i) }, async () => {
        const s = new Session({ accountId: 'x', loginTs: Math.floor(Date.now() / 1000), authorizations: { bench: { sid: 'sid', grantId: 'g' } } });
        await s.save(3600);
      }));
    }
    sessions += m.sessions;
    globalThis.gc?.();
    const { rss, heapUsed, heapTotal } = process.memoryUsage();
    const status = readFileSync('/proc/self/status', 'utf8');
    const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
    process.send!({ rss, heapUsed, heapTotal, sessions, anon: kib('RssAnon'), file: kib('RssFile'), shmem: kib('RssShmem'), threads: Number(/^Threads:\s+(\d+)/m.exec(status)?.[1]) });
  }
  if (m.stop) {
    await running.stop();
    rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  }
});
process.send!({ ready: { issuer: running.httpsUrl, clientSecret, trust: [toPem(authority.caCertificate('root'), 'CERTIFICATE'), toPem(authority.caCertificate('issuing'), 'CERTIFICATE')] } });
