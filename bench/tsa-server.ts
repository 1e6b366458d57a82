/**
 * One server process for bench/tsa.ts, built the way the appliance builds its public app
 * (appliance/app.ts buildPublicApp: same logger, metrics hooks, error handler, request ids), on
 * the appliance's own HSM key store (hsm/pkcs11.ts, worker-thread signing sessions) and LMDB
 * store (store/lmdb.ts, fsync before a transaction resolves), with the audit trail the appliance
 * appends every token to.
 *
 *   node bench/tsa-server.ts <bench dir> tsa|bare [port]      prints "READY <port>", stops on SIGTERM
 *
 * It listens with SO_REUSEPORT, as the appliance's processes do with YINXIN_PUBLIC_PROCESSES > 1:
 * a second server given the first one's port shares it.
 *
 * `bare` answers POST /tsa with a fixed 500-byte body through the same app: the HTTP ceiling.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { buildPublicApp } from '../appliance/app.ts';
import { signingThreadsOfPublicProcess } from '../appliance/public-processes.ts';
import { MetricsRegistry } from '../common/metrics.ts';
import { createAuditLog } from '../audit/audit.ts';
import { systemClock } from '../common/clock.ts';
import { fromPem } from '../common/pem.ts';
import { openPkcs11KeyStore, prepareSoftHsmToken } from '../hsm/index.ts';
import { openLmdbStore } from '../store/lmdb.ts';
import { ThreadedCommitter } from '../store/commit-thread.ts';
import { createTimeStampAuthority, TimeGuard, tsaMetrics, tsaRoutes } from '../tsa/index.ts';

// bench/tsa.ts prepares the token and keys under these names.
const BENCH_PIN = '1234';
const BENCH_TOKEN = 'tsa-bench';
const TSA_KEY = 'tsa/signing';
const AUDIT_KEY = 'audit/checkpoint';
const QUERY_TYPE = 'application/timestamp-query';

{
  const [dir, mode, portArg] = process.argv.slice(2);
  const token = await prepareSoftHsmToken({ dir: join(dir, 'hsm'), pin: BENCH_PIN, label: BENCH_TOKEN });
  // A second process sharing the port signs as the appliance's public processes do.
  const processes = Number(process.env.TSA_BENCH_PROCESSES ?? 1);
  const keys = await openPkcs11KeyStore({ module: token.module, tokenLabel: BENCH_TOKEN, pin: BENCH_PIN, sessionPool: processes > 1 ? signingThreadsOfPublicProcess(processes) : undefined });
  const store = openLmdbStore(join(dir, 'store'));
  const logger = pino({ level: process.env.TSA_BENCH_LOG_LEVEL ?? 'warn' });
  const metrics = new MetricsRegistry();
  let plugin;
  let authorityRef: import('../tsa/index.ts').TimeStampAuthority | undefined;
  let audit: ReturnType<typeof createAuditLog> | undefined;
  let committer: ThreadedCommitter | undefined;
  if (mode === 'bare') {
    const fixed = Buffer.alloc(500, 0x41);
    plugin = async (app: import('fastify').FastifyInstance) => {
      app.addContentTypeParser(QUERY_TYPE, { parseAs: 'buffer' }, (_r, body, done) => done(null, body));
      app.post('/tsa', async (_request, reply) => reply.type('application/timestamp-reply').send(fixed));
    };
  } else {
    audit = createAuditLog({ store, clock: systemClock, signer: await keys.getSigner(AUDIT_KEY), headSigning: { everyRecords: 1000, everyMs: 60_000 } });
    const authority = createTimeStampAuthority({
      signer: await keys.getSigner(TSA_KEY),
      certificate: fromPem(readFileSync(join(dir, 'tsa.pem'), 'utf8')),
      chain: [],
      store,
      audit,
      clock: systemClock,
      timeGuard: new TimeGuard({ clock: systemClock }),
      policy: { default: '1.2.3.4.1', accepted: [] },
      onSystemFailure: (e) => logger.error({ err: e }, 'systemFailure'),
      // As the appliance (appliance/services.ts); TSA_BENCH_LEDGER=inline commits on the main thread.
      committer: committer = process.env.TSA_BENCH_LEDGER === 'inline' ? undefined : new ThreadedCommitter(store, audit),
    });
    tsaMetrics(metrics, authority);
    authorityRef = authority;
    plugin = async (app: import('fastify').FastifyInstance) => { await app.register(tsaRoutes, { authority }); };
  }
  const app = await buildPublicApp({ logger, metrics, bodyLimit: 1024 * 1024, trustProxy: false, health: [], plugins: [plugin] });
  await app.listen({ host: '127.0.0.1', port: Number(portArg ?? 0), reusePort: true } as import('fastify').FastifyListenOptions);
  process.stdout.write(`READY ${(app.server.address() as { port: number }).port}\n`);
  process.on('SIGTERM', async () => {
    if (authorityRef) {
      const { recorded, commits } = authorityRef.stats().ledger;
      process.stderr.write(`ledger: ${recorded} records in ${commits} store transactions\n`);
    }
    await app.close();
    await authorityRef?.close();
    await committer?.close();
    await (audit as { close?: () => Promise<void> | void } | undefined)?.close?.();
    await store.close();
    await keys.close();
    process.exit(0);
  });
}
