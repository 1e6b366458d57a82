/**
 * The main process's side of the public processes (appliance/public-worker.ts): starts
 * YINXIN_PUBLIC_PROCESSES - 1 of them on the public port once the main process listens there,
 * restarts one that dies (after 1 s, doubling up to 30 s while it keeps dying), exposes their
 * metrics with its own (label process="public-N"), and stops them on shutdown.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import type { Logger } from 'pino';
import type { MetricFamily, MetricsRegistry } from '../common/metrics.ts';
import { YinxinError } from '../common/errors.ts';
import type { Config } from './config.ts';
import type { FromWorker, ToWorker } from './public-worker.ts';

export interface PublicProcesses {
  /** The processes running now (for /healthz and tests). */
  running(): number;
  stop(): Promise<void>;
}

/**
 * Signing threads of a public process: its share of the cores beyond its own main thread. With as
 * many processes as cores, none: each signs on its main thread, without a thread hop per signature.
 */
export function signingThreadsOfPublicProcess(processes: number): number {
  return Math.max(0, Math.floor(availableParallelism() / processes) - 1);
}

const START_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 15_000;

export async function startPublicProcesses(config: Config, port: number, logger: Logger, metrics: MetricsRegistry): Promise<PublicProcesses> {
  const count = config.publicProcesses - 1;
  const children = new Map<number, ChildProcess>();
  const families = new Map<number, MetricFamily[]>();
  metrics.include(() => [...families.values()].flat());
  let stopping = false;

  /** `delayMs`: how long to wait before restarting it if it dies (doubles while it keeps dying soon after starting). */
  const launch = (index: number, delayMs: number, initial: boolean): Promise<void> => new Promise((resolve, reject) => {
    const child = fork(new URL('./public-worker.ts', import.meta.url), [], { execArgv: process.execArgv, stdio: 'inherit', serialization: 'advanced' });
    children.set(index, child);
    let ready = false;
    let readyAt = 0;
    const timer = setTimeout(() => { if (!ready) { child.kill('SIGKILL'); reject(new YinxinError('internal', `public process ${index} did not start within ${START_TIMEOUT_MS / 1000} s`)); } }, START_TIMEOUT_MS);
    const tell = (m: ToWorker) => { if (child.connected) child.send(m); };
    child.on('message', (m: FromWorker) => {
      if (m.type === 'ready') {
        ready = true;
        readyAt = Date.now();
        clearTimeout(timer);
        resolve();
      } else if (m.type === 'failed') {
        clearTimeout(timer);
        if (!ready) reject(new YinxinError('internal', `public process ${index} failed to start: ${m.message}`));
      } else if (m.type === 'metrics') {
        families.set(index, m.families);
      } else if (m.type === 'metrics-text?') {
        tell({ type: 'metrics-text', id: m.id, text: metrics.render() });
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      families.delete(index);
      if (children.get(index) === child) children.delete(index);
      if (!ready) reject(new YinxinError('internal', `public process ${index} exited (${signal ?? code}) before it was ready`));
      if (stopping || (initial && !ready)) return; // a failed first start fails the appliance's start
      const next = ready && Date.now() - readyAt > 60_000 ? 1000 : Math.min(delayMs * 2, 30_000);
      logger.error({ process: `public-${index}`, code, signal, restartInMs: delayMs }, 'a public process stopped; restarting it');
      setTimeout(() => {
        if (!stopping) launch(index, next, false).catch(() => { /* its exit schedules the next attempt */ });
      }, delayMs).unref();
    });
    tell({ type: 'start', config: { ...config, httpPort: port }, index });
  });

  const handle: PublicProcesses = {
    running: () => children.size,
    async stop() {
      stopping = true;
      await Promise.all([...children.values()].map((child) => new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const kill = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
        child.once('exit', () => { clearTimeout(kill); resolve(); });
        if (child.connected) child.send({ type: 'stop' } satisfies ToWorker);
        else child.kill('SIGKILL');
      })));
    },
  };
  try {
    await Promise.all(Array.from({ length: count }, (_, i) => launch(i + 1, 1000, true)));
  } catch (e) {
    await handle.stop();
    throw e;
  }
  if (count > 0) logger.info({ processes: count + 1, port }, 'the public port is served by several processes');
  return handle;
}
