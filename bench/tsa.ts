/**
 * TSA throughput: tokens/s through POST /tsa under concurrent load (ECDSA P-256 key in SoftHSM2,
 * token records in LMDB), beside (a) the raw HSM sign rate of the same key (one caller,
 * synchronous graphene C_Sign) and (b) a bare fastify route answering the same POST with a fixed
 * 500-byte body (the HTTP ceiling). Servers run as 2 cluster workers (both cores); the load
 * generator is this process, a raw keep-alive HTTP/1.1 client (cheap per request).
 *
 *   node bench/tsa.ts [seconds=5] [connections=32] [workers=2]
 */
import cluster from 'node:cluster';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import { systemClock } from '../common/clock.ts';
import { fromPem } from '../common/pem.ts';
import { createTimeStampAuthority } from '../tsa/authority.ts';
import { buildTimeStampQuery, parseTimeStampResponse, verifyTimeStampToken } from '../tsa/client.ts';
import { tsaRoutes } from '../tsa/routes.ts';
import { TimeGuard } from '../tsa/timeguard.ts';
import { makeTestPki } from '../tsa/testing/pki.ts';
import { generateSoftHsmKey, openBenchLmdbStore, prepareSoftHsm, softHsmSigner } from './tsa-support.ts';

const [seconds = 5, connections = 32, workers = 2] = process.argv.slice(2).map(Number);
const KEY = 'tsa-bench';
const QUERY_TYPE = 'application/timestamp-query';

async function worker(): Promise<void> {
  const app = Fastify({ logger: false });
  if (process.env.BENCH_MODE === 'bare') {
    const fixed = Buffer.alloc(500, 0x41);
    app.addContentTypeParser(QUERY_TYPE, { parseAs: 'buffer' }, (_r, body, done) => done(null, body));
    app.post('/tsa', async (_request, reply) => reply.type('application/octet-stream').send(fixed));
  } else {
    const signer = softHsmSigner(KEY);
    const store = openBenchLmdbStore(process.env.BENCH_DB!);
    const authority = createTimeStampAuthority({
      signer,
      certificate: fromPem(readFileSync(process.env.BENCH_TSA_CERT!, 'utf8')),
      chain: [],
      store,
      clock: systemClock,
      timeGuard: new TimeGuard({ clock: systemClock }),
      policy: { default: '1.2.3.4.1', accepted: [] },
      precisionMs: 1,
      accuracy: { millis: 100 },
      onSystemFailure: (e) => console.error('systemFailure', e),
    });
    await app.register(tsaRoutes, { authority });
  }
  await app.listen({ host: '127.0.0.1', port: Number(process.env.BENCH_PORT) });
  process.send!('ready');
}

/** A raw keep-alive HTTP/1.1 client: `connections` sockets, one request in flight on each. */
function load(port: number, body: Uint8Array, durationMs: number): Promise<{ done: number; non200: number; sample: Buffer | undefined }> {
  const head = Buffer.from(`POST /tsa HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${QUERY_TYPE}\r\nContent-Length: ${body.length}\r\n\r\n`);
  const request = Buffer.concat([head, body]);
  const end = Date.now() + durationMs;
  let done = 0;
  let non200 = 0;
  let sample: Buffer | undefined;
  return new Promise((resolve) => {
    let open = connections;
    for (let c = 0; c < connections; c++) {
      const socket = connect(port, '127.0.0.1');
      socket.setNoDelay(true);
      let buffer = Buffer.alloc(0);
      socket.on('connect', () => socket.write(request));
      socket.on('data', (chunk) => {
        buffer = buffer.length ? Buffer.concat([buffer, chunk]) : chunk;
        for (;;) {
          const headerEnd = buffer.indexOf('\r\n\r\n');
          if (headerEnd < 0) return;
          const header = buffer.subarray(0, headerEnd).toString('latin1');
          const length = Number(/content-length: *(\d+)/i.exec(header)?.[1] ?? 0);
          if (buffer.length < headerEnd + 4 + length) return;
          if (!header.startsWith('HTTP/1.1 200')) non200++;
          if (!sample) sample = Buffer.from(buffer.subarray(headerEnd + 4, headerEnd + 4 + length));
          buffer = buffer.subarray(headerEnd + 4 + length);
          done++;
          if (Date.now() < end) socket.write(request);
          else {
            socket.end();
            if (--open === 0) resolve({ done, non200, sample });
            return;
          }
        }
      });
      socket.on('error', (e) => {
        console.error('client socket error', e.message);
        if (--open === 0) resolve({ done, non200, sample });
      });
    }
  });
}

async function serve(mode: 'bare' | 'tsa', env: Record<string, string>, body: Uint8Array) {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const forked = Array.from({ length: workers }, () => cluster.fork({ ...env, BENCH_MODE: mode, BENCH_PORT: String(port) }));
  await Promise.all(forked.map((w) => new Promise((r) => w.once('message', r))));
  await load(port, body, 1000); // warm-up
  const t0 = performance.now();
  const result = await load(port, body, seconds * 1000);
  const rate = result.done / ((performance.now() - t0) / 1000);
  await Promise.all(forked.map((w) => new Promise((r) => { w.once('exit', r); w.kill(); })));
  return { ...result, rate };
}

async function primary(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'yinxin-bench-tsa-'));
  process.env.SOFTHSM2_CONF = prepareSoftHsm(dir);
  generateSoftHsmKey(KEY);
  const signer = softHsmSigner(KEY);
  const pki = makeTestPki(signer.publicKeyInfo);
  const db = join(dir, 'db');

  // (a) raw HSM sign rate, one caller, synchronous.
  const tbs = new Uint8Array(200).fill(7);
  for (let i = 0; i < 500; i++) signer.signRawSync(tbs);
  let signs = 0;
  const s0 = performance.now();
  while (performance.now() - s0 < 3000) {
    signer.signRawSync(tbs);
    signs++;
  }
  const hsmRate = signs / ((performance.now() - s0) / 1000);

  const data = new Uint8Array(Buffer.from('bench document'));
  const query = buildTimeStampQuery(data, { certReq: true, nonce: 0x0102030405060708n });
  const bare = await serve('bare', {}, query.der);
  const tsa = await serve('tsa', { BENCH_DB: db, BENCH_TSA_CERT: pki.files.tsa }, query.der);

  // The answers were real, verifiable tokens, and every one is recorded.
  const parsed = parseTimeStampResponse(new Uint8Array(tsa.sample!));
  if (parsed.status !== 0 || !parsed.token) throw new Error(`the TSA did not grant: ${parsed.failInfo}`);
  await verifyTimeStampToken(parsed.token, data, { trustAnchors: [pki.root], intermediates: [pki.issuing] });
  const store = openBenchLmdbStore(db);
  const recorded = store.table('tsa.tokens').count();
  await store.close();

  const row = (name: string, rate: number, note = '') => console.log(`| ${name.padEnd(44)} | ${rate.toFixed(0).padStart(8)} | ${note}`);
  console.log(`\nTSA benchmark: ${seconds}s, ${connections} connections, ${workers} server workers, ECDSA P-256 in SoftHSM2, LMDB ledger\n`);
  console.log(`| ${'measure'.padEnd(44)} | ${'per s'.padStart(8)} | ratio`);
  console.log(`|${'-'.repeat(46)}|${'-'.repeat(10)}|------`);
  row('(a) raw HSM sign, 1 caller, sync C_Sign', hsmRate);
  row('(b) bare fastify POST, fixed 500-byte body', bare.rate, bare.non200 ? `${bare.non200} non-200!` : '');
  row('TSA tokens via POST /tsa', tsa.rate,
    `${((100 * tsa.rate) / bare.rate).toFixed(0)}% of (b) [target 40%], ${((100 * tsa.rate) / hsmRate).toFixed(0)}% of (a) [target 35%]`);
  console.log(`\ntokens recorded in tsa.tokens: ${recorded} (granted incl. warm-up: every 200 answer; non-200: ${tsa.non200}); token size ${parsed.token.length} B`);
  pki.cleanup();
  rmSync(dir, { recursive: true, force: true });
}

if (cluster.isPrimary) await primary();
else await worker();
