/**
 * A public process: started by the appliance's main process (appliance/public-processes.ts) when
 * YINXIN_PUBLIC_PROCESSES > 1, it serves the public HTTP port beside the main process
 * (SO_REUSEPORT: the kernel spreads connections over the processes' sockets), so time stamps,
 * OCSP answers and CRLs use every core.
 *
 * It opens the same HSM token and the same LMDB store. Everything it writes (TSA ledger rows and
 * their audit records) goes through LMDB write transactions, which are serialised across
 * processes; the audit chain's head is read inside each transaction (audit/audit.ts) and TSA
 * serials are checked for uniqueness inside it (tsa/authority.ts), so two writers keep one chain
 * and unique serials. It creates nothing: keys, certificates and CRL schedules stay with the
 * main process, which starts public processes only after creating them.
 *
 * Messages (Node's IPC channel): main -> worker { type: 'start', config, index }, { type: 'stop' },
 * { type: 'metrics-text', id, text }; worker -> main { type: 'ready' }, { type: 'failed', message },
 * { type: 'metrics', families }, { type: 'metrics-text?', id }.
 */
import { join } from 'node:path';
import type { FastifyListenOptions } from 'fastify';
import { createAuditLog } from '../audit/audit.ts';
import { systemClock } from '../common/clock.ts';
import { keepMemoryReducerAwake } from '../common/memory-reducer.ts';
import { withLabel, type MetricFamily } from '../common/metrics.ts';
import { openLmdbStore } from '../store/lmdb.ts';
import { tsaMetrics } from '../tsa/index.ts';
import type { Config } from './config.ts';
import { AUDIT_HEAD_SIGNING, AUDIT_KEY_LABEL, coreMetrics, openKeyStore } from './context.ts';
import { createLogger, buildPublicPort } from './server.ts';
import { signingThreadsOfPublicProcess } from './public-processes.ts';
import { openPublicServices } from './services.ts';

export type ToWorker =
  | { type: 'start'; config: Config; index: number }
  | { type: 'stop' }
  | { type: 'metrics-text'; id: number; text: string };
export type FromWorker =
  | { type: 'ready' }
  | { type: 'failed'; message: string }
  | { type: 'metrics'; families: MetricFamily[] }
  | { type: 'metrics-text?'; id: number };

const send = (message: FromWorker) => process.send?.(message);

async function run(config: Config, index: number): Promise<() => Promise<void>> {
  const name = `public-${index}`;
  const logger = createLogger(config).child({ process: name });
  const keys = await openKeyStore(config, logger, signingThreadsOfPublicProcess(config.publicProcesses));
  const store = openLmdbStore(join(config.dataDir, 'store'));
  const audit = createAuditLog({ store, clock: systemClock, signer: await keys.getSigner(AUDIT_KEY_LABEL), headSigning: AUDIT_HEAD_SIGNING });
  const metrics = coreMetrics(keys, store);
  const services = await openPublicServices({ config, logger, clock: systemClock, store, keys, audit });
  tsaMetrics(metrics, services.tsa);

  // The main process exposes every process's metrics; a scrape that lands here is answered with its text.
  const pending = new Map<number, (text: string) => void>();
  let nextId = 1;
  process.on('message', (m: ToWorker) => {
    if (m.type === 'metrics-text') pending.get(m.id)?.(m.text);
  });
  const metricsText = () => new Promise<string>((resolve) => {
    const id = nextId++;
    const timer = setTimeout(() => { pending.delete(id); resolve(metrics.render()); }, 2000);
    pending.set(id, (text) => { clearTimeout(timer); pending.delete(id); resolve(text); });
    send({ type: 'metrics-text?', id });
  });
  const push = setInterval(() => {
    send({ type: 'metrics', families: metrics.families().map((f) => ({ ...f, samples: f.samples.map((s) => withLabel(s, 'process', name)) })) });
  }, 1000);
  push.unref();

  const app = await buildPublicPort({ config, logger, metrics, keys, store, clock: systemClock }, services, metricsText);
  const listen: FastifyListenOptions & { reusePort: boolean } = { host: config.host, port: config.httpPort, reusePort: true };
  await app.listen(listen);
  keepMemoryReducerAwake();
  logger.info({ port: config.httpPort }, 'public process serving');
  return async () => {
    clearInterval(push);
    await app.close();
    await services.stop();
    await (audit as { close?: () => Promise<void> | void }).close?.();
    await store.close();
    await keys.close();
  };
}

let stop: (() => Promise<void>) | undefined;
process.on('message', (m: ToWorker) => {
  if (m.type === 'start' && !stop) {
    run(m.config, m.index).then((s) => { stop = s; send({ type: 'ready' }); }, (e: Error) => {
      send({ type: 'failed', message: e.message });
      process.exitCode = 1;
      process.disconnect?.();
    });
  } else if (m.type === 'stop') {
    void (stop?.() ?? Promise.resolve()).finally(() => process.exit(0));
  }
});
// Without the main process there is nobody to supervise this one: stop when the channel closes.
process.on('disconnect', () => { void (stop?.() ?? Promise.resolve()).finally(() => process.exit()); });
process.on('SIGTERM', () => { /* the main process stops its public processes itself */ });
process.on('SIGINT', () => { /* a terminal's Ctrl-C reaches the whole group: the main process stops us */ });
