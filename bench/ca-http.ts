/**
 * The CA's public HTTP routes under load, over real sockets: GET /crl/{ca}.crl (a CRL of N entries
 * read from the LMDB store, caching headers computed per request), the same with If-None-Match
 * (304), and GET /ca/{ca}.crt; beside the peer, a bare fastify route sending the same bytes from
 * memory (the ceiling for this server on this machine).
 *   node bench/ca-http.ts [N revoked, default 10000] [seconds per run, default 3]
 * The load generator runs in a worker thread (keep-alive, 32 requests in flight).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import Fastify from 'fastify';
import { pino } from 'pino';
import { buildPublicApp } from '../appliance/app.ts';
import { MetricsRegistry } from '../common/metrics.ts';
import { CertificateAuthority } from '../ca/authority.ts';
import { CrlPublisher } from '../ca/crl-publisher.ts';
import { caPublicRoutes } from '../ca/routes.ts';
import { TableAuditLog } from '../ca/test-support.ts';
import { systemClock } from '../common/clock.ts';
import { SoftwareKeyStore } from '../hsm/software.ts';
import { openLmdbStore } from '../store/lmdb.ts';

interface Load { url: string; seconds: number; headers: Record<string, string> }

if (!isMainThread) {
  const { url, seconds, headers } = workerData as Load;
  const agent = new Agent({ keepAlive: true, maxSockets: 32 });
  const until = performance.now() + seconds * 1000;
  let done = 0;
  let bad = 0;
  const one = (): Promise<void> => new Promise((resolve) => {
    request(url, { agent, headers }, (res) => {
      if (res.statusCode !== 200 && res.statusCode !== 304) bad++;
      res.resume();
      res.on('end', () => { done++; resolve(); });
    }).on('error', () => { bad++; resolve(); }).end();
  });
  await Promise.all(Array.from({ length: 32 }, async () => { while (performance.now() < until) await one(); }));
  agent.destroy();
  parentPort!.postMessage({ done, bad });
} else {
  const N = Number(process.argv[2] ?? 10_000);
  const SECONDS = Number(process.argv[3] ?? 3);
  const dir = mkdtempSync(join(tmpdir(), 'yinxin-bench-ca-http-'));
  const store = openLmdbStore(join(dir, 'store'));
  try {
    const keys = new SoftwareKeyStore();
    const audit = new TableAuditLog(store, systemClock);
    const authority = await CertificateAuthority.open({ store, keys, audit, clock: systemClock, options: { baseUrl: 'http://127.0.0.1:8080' } });
    await authority.initialize();
    // N revoked certificates straight into the tables the CRL is made from (issuing N would bench issuance).
    const now = new Date().toISOString();
    const serials = randomBytes(16 * N);
    for (let i = 0; i < N; i += 5000) {
      await store.transaction((tx) => {
        for (let j = i; j < Math.min(N, i + 5000); j++) {
          const serial = serials.subarray(16 * j, 16 * j + 16).toString('hex').replace(/^./, '4');
          tx.put(authority.certificates, ['issuing', serial], {
            ca: 'issuing', serial, profile: 'device', subject: `CN=d${j}`, subjectAttributes: [{ type: 'CN', value: `d${j}` }], key: 'ECDSA P-256', keyIdentifier: '00',
            notBefore: now, notAfter: now, issuedAt: now, status: 'revoked', revokedAt: now, reason: 1, der: new Uint8Array(0),
          });
          tx.put(authority.index.status, ['revoked', 'issuing', serial], 1);
        }
      });
    }
    const crls = new CrlPublisher({ store, audit, clock: systemClock, authority });
    const t0 = performance.now();
    const { full } = await crls.publish('issuing');
    const publishMs = performance.now() - t0;

    const app = await buildPublicApp({ logger: pino({ level: 'silent' }), metrics: new MetricsRegistry(), bodyLimit: 1 << 20, trustProxy: false, health: [], plugins: [(a) => caPublicRoutes(a, { authority, crls })] });
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    const crlBytes = Buffer.from(full.der);
    const peer = Fastify();
    peer.get('/crl', async (_req, reply) => reply.type('application/pkix-crl').send(crlBytes));
    const peerBase = await peer.listen({ host: '127.0.0.1', port: 0 });
    const etag = (await fetch(`${base}/crl/issuing.crl`)).headers.get('etag')!;

    const load = (url: string, headers: Record<string, string> = {}) => new Promise<{ done: number; bad: number }>((resolve, reject) => {
      const w = new Worker(new URL(import.meta.url), { workerData: { url, seconds: SECONDS, headers } satisfies Load });
      w.once('message', resolve);
      w.once('error', reject);
    });
    const rows: Array<[string, number, number]> = [];
    for (const [name, url, headers] of [
      [`bare fastify, same CRL bytes from memory (peer)`, `${peerBase}/crl`, {}],
      [`GET /crl/issuing.crl (${N} entries, ${(crlBytes.length / 1024).toFixed(0)} KiB, LMDB)`, `${base}/crl/issuing.crl`, {}],
      ['GET /crl/issuing.crl with If-None-Match (304)', `${base}/crl/issuing.crl`, { 'if-none-match': etag }],
      ['GET /ca/issuing.crt', `${base}/ca/issuing.crt`, {}],
    ] as const) {
      const r = await load(url, headers);
      rows.push([name, r.done / SECONDS, r.bad]);
    }
    await app.close();
    await peer.close();
    await crls.stop();

    const peerRate = rows[0][1];
    process.stdout.write(`CRL publication with ${N} entries: ${publishMs.toFixed(0)} ms (software P-256 key)\n\n`);
    process.stdout.write(`| route | requests/s | vs peer | errors |\n|---|---:|---:|---:|\n`);
    for (const [name, rate, bad] of rows) process.stdout.write(`| ${name} | ${rate.toFixed(0)} | ${(rate / peerRate).toFixed(2)} | ${bad} |\n`);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
