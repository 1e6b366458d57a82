/**
 * `yinxin ocsp`: the responder as a process of its own. It opens the store read-only (the
 * appliance stays its only writer) and the HSM, and serves only /ocsp and /healthz, so relying
 * parties keep getting answers while the CA is restarted, and more responders can be added on
 * the same data (or a replica of it). Status changes reach it through the status-change tables
 * it polls; new or renewed signing identities are picked up every `reloadEveryMs`.
 */
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../common/clock.ts';
import type { KeyStore } from '../hsm/signer.ts';
import { openLmdbStore } from '../store/lmdb.ts';
import type { Store } from '../store/store.ts';
import { OcspResponder, prewarmInBackground, type OcspResponderOptions } from './responder.ts';
import { ocspRoutes } from './routes.ts';
import { loadOcspSigners, reloadOcspSignersEvery } from './signers.ts';

export interface StandaloneResponderOptions {
  /** The appliance's data directory (the store is <dataDir>/store). */
  dataDir: string;
  host: string;
  port: number;
  /** Opens the HSM as the appliance does (module, slot or token, PIN): the composition root knows how. */
  openKeyStore: () => Promise<KeyStore>;
  logger?: Logger | boolean;
  clock?: Clock;
  responder?: OcspResponderOptions;
  /** How often signing identities are re-read from the store (default 60 s). */
  reloadEveryMs?: number;
  /** Opens the store; default LMDB read-only at <dataDir>/store. */
  openStore?: (path: string) => Store;
}

export interface StandaloneResponder {
  app: FastifyInstance;
  responder: OcspResponder;
  /** http://host:port */
  url: string;
  close(): Promise<void>;
}

export async function startStandaloneResponder(o: StandaloneResponderOptions): Promise<StandaloneResponder> {
  const store = (o.openStore ?? ((path) => openLmdbStore(path, { readOnly: true })))(join(o.dataDir, 'store'));
  let keys: KeyStore | undefined;
  let app: FastifyInstance | undefined;
  let responder: OcspResponder | undefined;
  let stopReloading: (() => void) | undefined;
  const close = async () => {
    stopReloading?.();
    await app?.close();
    await responder?.stop();
    await keys?.close();
    await store.close();
  };
  try {
    keys = await o.openKeyStore();
    const k = keys;
    app = (typeof o.logger === 'object' ? Fastify({ loggerInstance: o.logger }) : Fastify({ logger: o.logger ?? false })) as unknown as FastifyInstance;
    const log = app.log;
    responder = new OcspResponder({
      store, clock: o.clock ?? systemClock, signers: await loadOcspSigners(store, k), options: o.responder,
      onError: (error, what) => log.error({ err: error }, `ocsp: ${what} failed`),
    });
    const r = responder;
    if (r.issuers.length === 0) log.warn('no CA with an OCSP signer in the store yet: every request will be unauthorized until the appliance has started once');
    r.start();
    void prewarmInBackground(r, log);
    stopReloading = reloadOcspSignersEvery(r, store, k, o.reloadEveryMs ?? 60_000, (e) => log.error({ err: e }, 'ocsp: reloading the signers failed'));
    await app.register(ocspRoutes, { responder: r });
    app.get('/healthz', async (_request, reply) => {
      const hsm = await k.health().catch((e: Error) => ({ ok: false, detail: e.message }));
      const ok = hsm.ok && r.issuers.length > 0;
      return reply.code(ok ? 200 : 503).send({ status: ok ? 'ok' : 'unavailable', checks: { hsm, issuers: r.issuers }, stats: r.stats() });
    });
    await app.listen({ host: o.host, port: o.port });
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : o.port;
    return { app, responder: r, url: `http://${o.host.includes(':') ? `[${o.host}]` : o.host}:${port}`, close };
  } catch (e) {
    await close().catch(() => undefined);
    throw e;
  }
}
