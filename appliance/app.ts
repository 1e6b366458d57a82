/**
 * build*App(): the two fastify instances, without listening (tests use inject()).
 *  - public HTTP app: the PKI endpoints relying parties call (OCSP, CRL, CA certificates, TSA),
 *    /healthz and /metrics;
 *  - secure HTTPS app: the /api/v1 REST API with its OpenAPI document, the console, the IdP.
 * Services plug in through `PublicService` / `SecureService` registrations of the composition root.
 */
import { randomUUID } from 'node:crypto';
import swagger from '@fastify/swagger';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { Logger } from 'pino';
import { YinxinError } from '../common/errors.ts';
import { installApiGuard, type Authenticator } from '../auth/guard.ts';
import { sendProblem } from '../common/problem.ts';
import { PROMETHEUS_CONTENT_TYPE, type MetricsRegistry } from '../common/metrics.ts';

export interface HealthCheck {
  name: string;
  check(): Promise<{ ok: boolean; detail: string }>;
}

export interface AppOptions {
  logger: Logger;
  metrics: MetricsRegistry;
  bodyLimit: number;
  trustProxy: boolean;
  health: HealthCheck[];
  /** The /metrics text when it is not this process's registry alone (a public process asks the main process). */
  metricsText?: () => Promise<string>;
  /** Registers routes on the app (each a fastify plugin with its options bound). */
  plugins: Array<(app: FastifyInstance) => Promise<void> | void>;
}

export interface SecureAppOptions extends AppOptions {
  authenticator: Authenticator;
  https?: { key: string; cert: string };
  version: string;
  /** The public HTTP app and its base URL: its tagged routes join /api/docs with that URL as their server. */
  publicApp?: { app: FastifyInstance; url: string };
}

/** The OpenAPI document with the public app's documented paths, each served from the public URL (OpenAPI 3.1 s4.8.9 servers). */
function withPublicPaths<T extends { paths?: Record<string, object | undefined> }>(doc: T, pub: SecureAppOptions['publicApp']): T {
  if (!pub) return doc;
  const servers = [{ url: pub.url, description: 'public HTTP port (no authentication)' }];
  const paths = (pub.app.swagger() as { paths?: Record<string, object> }).paths ?? {};
  return { ...doc, paths: { ...doc.paths, ...Object.fromEntries(Object.entries(paths).map(([path, item]) => [path, { ...item, servers }])) } };
}

function baseApp(o: AppOptions, server: 'http' | 'https', extra: Record<string, unknown> = {}): FastifyInstance {
  const app = Fastify({
    loggerInstance: o.logger,
    bodyLimit: o.bodyLimit,
    trustProxy: o.trustProxy,
    requestIdHeader: 'x-request-id',
    // A caller-supplied id is kept only if it looks like one (it lands in logs and audit records).
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && /^[A-Za-z0-9._-]{8,64}$/.test(given) ? given : randomUUID();
    },
    // Unknown fields are refused (400), not silently dropped: a typo in a field name must not pass as "not given".
    ajv: { customOptions: { removeAdditional: false } },
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    ...extra,
  } as FastifyServerOptions) as unknown as FastifyInstance;

  const requests = o.metrics.counter('yinxin_http_requests_total', 'HTTP requests by server, route, method and status');
  const latency = o.metrics.histogram('yinxin_http_request_duration_seconds', 'HTTP request latency by server and route',
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]);
  app.addHook('onRequest', async (req, reply) => {
    reply.header('x-request-id', req.id);
  });
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    requests.inc({ server, route, method: req.method, status: String(reply.statusCode) });
    latency.observe({ server, route }, reply.elapsedTime / 1000);
  });

  app.setErrorHandler((error, request, reply) => {
    const status = (error as { statusCode?: number }).statusCode;
    if (!(error instanceof YinxinError) && (status === undefined || status >= 500)) request.log.error({ err: error }, 'unhandled error');
    return sendProblem(reply, error, request);
  });
  app.setNotFoundHandler((request, reply) =>
    sendProblem(reply, new YinxinError('not-found', `no route ${request.method} ${request.url.split('?')[0]}`), request));

  app.get('/healthz', { logLevel: 'warn' }, async (_req, reply) => {
    const results = await Promise.all(o.health.map(async (h) => {
      try {
        return [h.name, await h.check()] as const;
      } catch (e) {
        return [h.name, { ok: false, detail: (e as Error).message }] as const;
      }
    }));
    const ok = results.every(([, r]) => r.ok);
    return reply.code(ok ? 200 : 503).header('cache-control', 'no-store').send({ status: ok ? 'ok' : 'failing', checks: Object.fromEntries(results) });
  });
  app.get('/metrics', { logLevel: 'warn' }, async (_req, reply) =>
    reply.type(PROMETHEUS_CONTENT_TYPE).header('cache-control', 'no-store').send(o.metricsText ? await o.metricsText() : o.metrics.render()));
  return app;
}

export async function buildPublicApp(o: AppOptions): Promise<FastifyInstance> {
  const app = baseApp(o, 'http');
  // Only routes that give an OpenAPI view with tags are documented (in the secure app's /api/docs, see publicApp).
  await app.register(swagger, { openapi: { openapi: '3.1.0' }, hideUntagged: true });
  for (const plugin of o.plugins) await app.register(async (scope) => plugin(scope));
  return app;
}

export async function buildSecureApp(o: SecureAppOptions): Promise<FastifyInstance> {
  // Client certificates are requested (certificate login, idp/certificate-login.ts) but not required:
  // the IdP decides, after its own chain, revocation and EKU checks, what a presented certificate means.
  const app = baseApp(o, 'https', o.https ? { https: { key: o.https.key, cert: o.https.cert, minVersion: 'TLSv1.2', requestCert: true, rejectUnauthorized: false } } : {});
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'yinxin API', version: o.version, description: 'PKI, identity and security services appliance. Errors are RFC 9457 problem documents with a stable `code`.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'POST /api/v1/auth/login, or an API token' } } },
      security: [{ bearer: [] }],
    },
    transformObject: (d) => ('openapiObject' in d ? withPublicPaths(d.openapiObject, o.publicApp) : d.swaggerObject),
  });
  installApiGuard(app, o.authenticator);
  for (const plugin of o.plugins) await app.register(async (scope) => plugin(scope));
  app.get('/api/docs', { schema: { hide: true } }, async () => app.swagger());
  return app;
}
