/**
 * `yinxin start`: opens the appliance, builds both apps, listens, and shuts down gracefully on
 * SIGTERM/SIGINT (stops accepting, lets in-flight requests finish, closes the store cleanly).
 */
import { readFileSync } from 'node:fs';
import { flushCompileCache } from 'node:module';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance, FastifyListenOptions } from 'fastify';
import { pino, type Logger } from 'pino';
import { authRoutes } from '../auth/routes.ts';
import { buildPublicApp, buildSecureApp, type HealthCheck } from './app.ts';
import type { Config } from './config.ts';
import { openAppliance, type Appliance } from './context.ts';
import { dataPaths } from './paths.ts';
import { startPublicProcesses } from './public-processes.ts';
import type { PublicServices } from './services.ts';
import { systemRoutes } from './system-routes.ts';
import { ensureTlsMaterial } from './tls.ts';
import { tsaRoutes } from '../tsa/index.ts';
import { ocspRoutes } from '../ocsp/index.ts';
import { caApiRoutes, caPublicRoutes } from '../ca/routes.ts';
import { attributeCertificateRoutes } from '../ca/attribute-routes.ts';
import { sealApiRoutes, sealPublicRoutes } from '../seal/index.ts';
import { keepMemoryReducerAwake } from '../common/memory-reducer.ts';

export const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export interface RunningAppliance {
  appliance: Appliance;
  http: FastifyInstance;
  https: FastifyInstance;
  httpUrl: string;
  httpsUrl: string;
  stop(): Promise<void>;
}

export function createLogger(config: Pick<Config, 'logLevel'>): Logger {
  return pino({ level: config.logLevel, base: { service: 'yinxin' }, redact: ['req.headers.authorization', 'req.headers.cookie'] });
}

/** Both apps with every service's routes, not listening: what the server runs and what tests inject into. */
export async function buildApps(appliance: Appliance, tls?: { key: string; cert: string }): Promise<{ http: FastifyInstance; https: FastifyInstance }> {
  const { services } = appliance;
  const http = await buildPublicPort(appliance, services);
  const common = { logger: appliance.logger, metrics: appliance.metrics, bodyLimit: appliance.config.bodyLimit, trustProxy: appliance.config.trustProxy, health: healthChecks(appliance, services) };
  const https = await buildSecureApp({
    ...common,
    https: tls,
    authenticator: appliance.operators,
    version: VERSION,
    publicApp: { app: http, url: appliance.config.publicUrl },
    plugins: [
      (app) => authRoutes(app, { operators: appliance.operators }),
      (app) => systemRoutes(app, { appliance }),
      (app) => caApiRoutes(app, { authority: services.authority, ra: services.ra, crls: services.crls }),
      (app) => attributeCertificateRoutes(app, { attributes: services.attributes }),
      (app) => sealApiRoutes(app, { registry: services.seals, verifyOptions: services.sealVerifyOptions }),
      (app) => services.idp.routes(app),
    ],
  });
  return { http, https };
}

type ProcessParts = Pick<Appliance, 'config' | 'logger' | 'metrics' | 'keys' | 'store' | 'clock'>;

function healthChecks(a: ProcessParts, services: Pick<PublicServices, 'timeGuard'>): HealthCheck[] {
  return [
    { name: 'hsm', check: () => a.keys.health() },
    { name: 'store', check: async () => ({ ok: true, detail: `${a.store.stats().sizeBytes} bytes` }) },
    { name: 'clock', check: async () => ({ ok: true, detail: a.clock.now().toISOString() }) },
    { name: 'time', check: async () => {
      const state = services.timeGuard.state();
      return { ok: state.trusted, detail: state.trusted ? `trusted (synchronised: ${state.synchronised})` : `not trusted: ${state.reason}` };
    } },
  ];
}

/** The public HTTP port's app (TSA, OCSP, CRLs and CA certificates, seal verification): the same in the main process and in every public process. */
export async function buildPublicPort(a: ProcessParts, services: PublicServices, metricsText?: () => Promise<string>): Promise<FastifyInstance> {
  return buildPublicApp({
    logger: a.logger, metrics: a.metrics, bodyLimit: a.config.bodyLimit, trustProxy: a.config.trustProxy, health: healthChecks(a, services), metricsText,
    plugins: [
      async (app) => { await app.register(tsaRoutes, { authority: services.tsa }); },
      async (app) => { await app.register(ocspRoutes, { responder: services.ocsp }); },
      (app) => caPublicRoutes(app, { authority: services.authority, crls: services.crls, attributes: services.attributes }),
      (app) => sealPublicRoutes(app, { verifyOptions: services.sealVerifyOptions }),
    ],
  });
}

export async function startAppliance(config: Config, logger: Logger = createLogger(config)): Promise<RunningAppliance> {
  const appliance = await openAppliance(config, { logger });
  try {
    const tls = await ensureTlsMaterial(dataPaths(config.dataDir).tls, tlsNames(config), appliance.services.tlsIssuer);
    const { http, https } = await buildApps(appliance, { key: tls.key, cert: tls.cert });
    // With public processes, every process listens on the public port with SO_REUSEPORT.
    const listen: FastifyListenOptions & { reusePort?: boolean } = { host: config.host, port: config.httpPort, ...(config.publicProcesses > 1 ? { reusePort: true } : {}) };
    await http.listen(listen);
    await https.listen({ host: config.host, port: config.httpsPort });
    const httpUrl = urlOf(http, 'http');
    const httpsUrl = urlOf(https, 'https');
    const publicProcesses = config.publicProcesses > 1
      ? await startPublicProcesses(config, (http.server.address() as AddressInfo).port, logger, appliance.metrics).catch(async (e) => {
        await Promise.allSettled([http.close(), https.close()]);
        throw e;
      })
      : null;
    // Everything is loaded: write the compile cache now (README, Memory) rather than at exit.
    flushCompileCache();
    const stopNudges = keepMemoryReducerAwake();
    let stopping: Promise<void> | null = null;
    const stop = () => (stopping ??= (async () => {
      logger.info('shutting down: finishing in-flight requests');
      stopNudges();
      await publicProcesses?.stop();
      await Promise.allSettled([http.close(), https.close()]);
      await appliance.close();
      logger.info('stopped');
    })());
    return { appliance, http, https, httpUrl, httpsUrl, stop };
  } catch (e) {
    await appliance.close();
    throw e;
  }
}

function tlsNames(config: Config): string[] {
  const names = new Set<string>(['localhost', '127.0.0.1']);
  for (const u of [config.httpsUrl, config.publicUrl]) names.add(new URL(u).hostname.replace(/^\[|\]$/g, ''));
  if (config.host !== '0.0.0.0' && config.host !== '::') names.add(config.host);
  return [...names];
}

function urlOf(app: FastifyInstance, scheme: string): string {
  const address = app.server.address();
  if (address && typeof address === 'object') {
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    return `${scheme}://${host}:${address.port}`;
  }
  return String(address);
}
