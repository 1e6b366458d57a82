/**
 * The appliance for bench/idp.ts, in a process of its own so that the figures are the server's
 * alone: startAppliance() as `yinxin start` runs it (every service, SoftHSM2 token, LMDB store,
 * HTTPS with a certificate from the issuing CA), plus one user and one application for the load.
 * Talks to its parent over IPC:
 *   -> { ready: { issuer, clientSecret, trust: [PEM...] } }
 *   <- { sessions: N }        stores N more SSO sessions as the provider stores them after a login
 *   <- { idleSeconds: S }     waits S seconds without requests
 *   -> { memory: Memory }     after either: what the process holds then, as it stands (no forced GC)
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { getHeapStatistics } from 'node:v8';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../appliance/config.ts';
import { startAppliance } from '../appliance/server.ts';
import { toPem } from '../common/pem.ts';
import { memoryMapOf, peakRssOf, type MemoryMap } from './proc.ts';

export interface Memory {
  sessions: number;
  map: MemoryMap;
  peakRss: number;
  /** The main thread's V8 heap: resident bytes, and bytes in objects (live, or dead and not yet collected). */
  mainHeap: { resident: number; used: number };
  threads: number;
  /** Did this process strip TypeScript itself (Node's amaro, a WebAssembly module per thread), or did the compile cache answer? */
  strippedTypeScript: boolean;
}

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
  if (m.sessions) {
    const Session = idp.provider.Session;
    for (let i = 0; i < m.sessions; i += 500) {
      await Promise.all(Array.from({ length: Math.min(500, m.sessions - i) }, async () => {
        const s = new Session({ accountId: 'x', loginTs: Math.floor(Date.now() / 1000), authorizations: { bench: { sid: 'sid', grantId: 'g' } } });
        await s.save(3600);
      }));
    }
    sessions += m.sessions;
  }
  if (m.sessions !== undefined || m.idleSeconds) {
    const heap = getHeapStatistics();
    const memory: Memory = {
      sessions,
      map: memoryMapOf(process.pid),
      peakRss: peakRssOf(process.pid),
      mainHeap: { resident: heap.total_physical_size, used: heap.used_heap_size },
      threads: Number(/^Threads:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]),
      // Node's list of the built-in modules it loaded (not in @types/node).
      strippedTypeScript: (process as unknown as { moduleLoadList: string[] }).moduleLoadList.some((name) => name.includes('amaro')),
    };
    process.send!({ memory });
  }
  if (m.stop) {
    await running.stop();
    rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  }
});
process.send!({ ready: { issuer: running.httpsUrl, clientSecret, trust: [toPem(authority.caCertificate('root'), 'CERTIFICATE'), toPem(authority.caCertificate('issuing'), 'CERTIFICATE')] } });
