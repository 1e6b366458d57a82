/**
 * `yinxin start`: opens the appliance, builds both apps, listens, and shuts down gracefully on
 * SIGTERM/SIGINT (stops accepting, lets in-flight requests finish, closes the store cleanly).
 */
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import { authRoutes } from '../auth/routes.ts';
import { buildPublicApp, buildSecureApp, type HealthCheck } from './app.ts';
import type { Config } from './config.ts';
import { openAppliance, type Appliance } from './context.ts';
import { dataPaths } from './paths.ts';
import { systemRoutes } from './system-routes.ts';
import { ensureTlsMaterial } from './tls.ts';
import { tsaRoutes } from '../tsa/index.ts';
import { ocspRoutes } from '../ocsp/index.ts';
import { caApiRoutes, caPublicRoutes } from '../ca/routes.ts';
import { attributeCertificateRoutes } from '../ca/attribute-routes.ts';
import { sealApiRoutes, sealPublicRoutes } from '../seal/index.ts';

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
  const { config, logger } = appliance;
  const health: HealthCheck[] = [
    { name: 'hsm', check: () => appliance.keys.health() },
    { name: 'store', check: async () => ({ ok: true, detail: `${appliance.store.stats().sizeBytes} bytes` }) },
    { name: 'clock', check: async () => ({ ok: true, detail: appliance.clock.now().toISOString() }) },
  ];
  const common = { logger, metrics: appliance.metrics, bodyLimit: config.bodyLimit, trustProxy: config.trustProxy, health };
  const { services } = appliance;
  health.push({ name: 'time', check: async () => {
    const state = services.timeGuard.state();
    return { ok: state.trusted, detail: state.trusted ? `trusted (synchronised: ${state.synchronised})` : `not trusted: ${state.reason}` };
  } });
  const http = await buildPublicApp({ ...common, plugins: [
    async (app) => { await app.register(tsaRoutes, { authority: services.tsa }); },
    async (app) => { await app.register(ocspRoutes, { responder: services.ocsp }); },
    (app) => caPublicRoutes(app, { authority: services.authority, crls: services.crls, attributes: services.attributes }),
    (app) => sealPublicRoutes(app, { verifyOptions: services.sealVerifyOptions }),
  ] });
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

export async function startAppliance(config: Config, logger: Logger = createLogger(config)): Promise<RunningAppliance> {
  const appliance = await openAppliance(config, { logger });
  try {
    const tls = await ensureTlsMaterial(dataPaths(config.dataDir).tls, tlsNames(config), appliance.services.tlsIssuer);
    const { http, https } = await buildApps(appliance, { key: tls.key, cert: tls.cert });
    await http.listen({ host: config.host, port: config.httpPort });
    await https.listen({ host: config.host, port: config.httpsPort });
    const httpUrl = urlOf(http, 'http');
    const httpsUrl = urlOf(https, 'https');
    let stopping: Promise<void> | null = null;
    const stop = () => (stopping ??= (async () => {
      logger.info('shutting down: finishing in-flight requests');
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
