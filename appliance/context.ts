/**
 * The composition root: opens the data directory, the HSM, the store and the audit trail, creates
 * what the first start needs, and wires the services' cores together. Nothing else in the code
 * base reaches for configuration or opens resources; cores get what they need from here.
 */
import { randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { AuditLog } from '../audit/types.ts';
import { createAuditLog } from '../audit/audit.ts';
import { OperatorService } from '../auth/operators.ts';
import { systemClock, type Clock } from '../common/clock.ts';
import { YinxinError } from '../common/errors.ts';
import { openPkcs11KeyStore } from '../hsm/pkcs11.ts';
import { prepareSoftHsmToken } from '../hsm/softhsm.ts';
import type { KeyStore, Signer } from '../hsm/signer.ts';
import { openLmdbStore } from '../store/lmdb.ts';
import type { Store } from '../store/store.ts';
import type { Config } from './config.ts';
import { acquireInstanceLock, type InstanceLock } from './lock.ts';
import { MetricsRegistry } from '../common/metrics.ts';
import { dataPaths } from './paths.ts';
import { openServices, type Services } from './services.ts';
import { tsaMetrics } from '../tsa/index.ts';

export const AUDIT_KEY_LABEL = 'audit/checkpoint';
/** How often every process of the appliance signs the audit chain's head. */
export const AUDIT_HEAD_SIGNING = { everyRecords: 1000, everyMs: 60_000 };

export interface Appliance {
  config: Config;
  logger: Logger;
  clock: Clock;
  store: Store;
  keys: KeyStore;
  audit: AuditLog & { close?(): Promise<void> | void };
  operators: OperatorService;
  metrics: MetricsRegistry;
  /** Set on the very first start only: shown once, never stored in clear. */
  bootstrapAdmin: { username: string; password: string } | null;
  services: Services;
  close(): Promise<void>;
}

export interface OpenOptions {
  logger: Logger;
  clock?: Clock;
  /** Take the single-writer lock (the appliance does; read-only tools do not). */
  lock?: boolean;
}

export async function openAppliance(config: Config, o: OpenOptions): Promise<Appliance> {
  const clock = o.clock ?? systemClock;
  const paths = dataPaths(config.dataDir);
  const log = o.logger;
  prepareDataDirectory(config.dataDir);
  const lock: InstanceLock | null = o.lock === false ? null : acquireInstanceLock(paths.lock);
  const opened: Array<() => Promise<void> | void> = [() => lock?.release()];
  const closeAll = async () => {
    for (const close of opened.reverse()) {
      try { await close(); } catch (e) { log.warn({ err: e }, 'error while closing'); }
    }
    opened.length = 0;
  };
  try {
    const keys = await openKeyStore(config, log);
    opened.push(() => keys.close());
    const store = openLmdbStore(paths.store);
    opened.push(() => store.close());

    const auditSigner = await ensureKeyPair(keys, AUDIT_KEY_LABEL, log);
    const audit = createAuditLog({ store, clock, signer: auditSigner, headSigning: AUDIT_HEAD_SIGNING });
    opened.push(() => (audit as { close?: () => Promise<void> | void }).close?.());

    const operators = new OperatorService({ store, audit, clock, sessionTtlSeconds: config.sessionTtlSeconds });
    const bootstrapAdmin = await operators.bootstrapAdministrator();

    const metrics = coreMetrics(keys, store);

    const core = { config, logger: log, clock, store, keys, audit, operators, metrics, bootstrapAdmin, close: closeAll };
    const services = await openServices(core);
    opened.push(() => services.stop());
    tsaMetrics(metrics, services.tsa);
    return { ...core, services };
  } catch (e) {
    await closeAll();
    throw e;
  }
}

/** The HSM's and the store's metrics, which every process of the appliance exposes. */
export function coreMetrics(keys: KeyStore, store: Store): MetricsRegistry {
  const metrics = new MetricsRegistry();
  metrics.counterFrom('yinxin_hsm_sign_operations_total', 'Signatures made by the HSM', () => keys.stats().signs);
  metrics.counterFrom('yinxin_hsm_sign_errors_total', 'HSM signatures that failed', () => keys.stats().signErrors);
  metrics.gauge('yinxin_store_size_bytes', 'Size of the LMDB data file', () => store.stats().sizeBytes);
  metrics.gauge('yinxin_store_entries', 'Entries per store table', () =>
    Object.entries(store.stats().entries).map(([table, value]) => ({ labels: { table }, value })));
  return metrics;
}

function prepareDataDirectory(dir: string): void {
  try {
    if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (!statSync(dir).isDirectory()) throw new Error('it is not a directory');
    accessSync(dir, constants.R_OK | constants.W_OK | constants.X_OK);
  } catch (e) {
    throw new YinxinError('store-unavailable', `cannot use the data directory ${dir}: ${(e as Error).message}. Set YINXIN_DATA to a directory this user can read and write.`);
  }
}

/** The embedded SoftHSM2 token lives in <data>/hsm with its PINs there (0600); any other module is used as configured. */
export async function openKeyStore(config: Config, log: Logger, signingThreads?: number): Promise<KeyStore> {
  const paths = dataPaths(config.dataDir);
  const p = config.pkcs11;
  const common = { module: p.module, slot: p.slot, tokenLabel: p.tokenLabel, sessionKeyCopies: p.sessionKeyCopies, sessionPool: signingThreads };
  if (!p.embedded) {
    return openPkcs11KeyStore({ ...common, pin: p.pin as string });
  }
  mkdirSync(paths.hsm, { recursive: true, mode: 0o700 });
  const pin = p.pin ?? readOrCreateSecret(paths.pin);
  const soPin = readOrCreateSecret(paths.soPin);
  const token = await prepareSoftHsmToken({ dir: paths.hsm, pin, soPin, label: p.tokenLabel });
  if (token.created) log.info({ token: p.tokenLabel, dir: paths.hsm }, 'created the SoftHSM2 token');
  return openPkcs11KeyStore({ ...common, pin });
}

function readOrCreateSecret(path: string): string {
  if (existsSync(path)) return readFileSync(path, 'utf8').trim();
  const secret = randomBytes(18).toString('base64url');
  writeFileSync(path, `${secret}\n`, { mode: 0o600 });
  return secret;
}

export async function ensureKeyPair(keys: KeyStore, label: string, log: Logger, spec: Parameters<KeyStore['generateKeyPair']>[1] = { type: 'ec', curve: 'P-256' }): Promise<Signer> {
  if (await keys.hasKey(label)) return keys.getSigner(label);
  log.info({ label }, 'generating a key pair in the HSM');
  return keys.generateKeyPair(label, spec);
}
