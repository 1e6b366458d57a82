/**
 * A throw-away appliance for the responder's tests and benchmark: the CA core on the in-memory
 * store and software key store (ca/test-support.ts, hsm/software.ts), its root and issuing CAs,
 * their delegated OCSP signers, certificates to ask about, the responder behind a real listening
 * fastify server on 127.0.0.1, and files for openssl. Not used by the appliance.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { systemClock, type Clock } from '../common/clock.ts';
import { toPem } from '../common/pem.ts';
import { SoftwareKeyStore } from '../hsm/software.ts';
import { CertificateAuthority, type CertificateRecord } from '../ca/authority.ts';
import { MemoryStore, TableAuditLog } from '../ca/test-support.ts';
import { OcspResponder, type OcspResponderOptions } from './responder.ts';
import { ocspRoutes } from './routes.ts';
import { ensureOcspSigners } from './signers.ts';
import type { OcspSigner } from './response.ts';

export const BASE_URL = 'http://127.0.0.1:8080';

export interface OcspFixture {
  dir: string;
  store: MemoryStore;
  keys: SoftwareKeyStore;
  authority: CertificateAuthority;
  signers: Map<string, OcspSigner>;
  file(name: string, content: string | Uint8Array): string;
  /** PEM files: root.pem, issuing.pem, chain.pem (root + issuing). */
  files: { root: string; issuing: string; chain: string };
  /** Issues an end-entity (device profile) certificate from `ca` and writes <name>.pem. */
  issue(ca: string, name: string): Promise<{ record: CertificateRecord; file: string }>;
  cleanup(): void;
}

export async function makeOcspFixture(clock: Clock = systemClock): Promise<OcspFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'yinxin-ocsp-'));
  const store = new MemoryStore();
  const keys = new SoftwareKeyStore();
  const audit = new TableAuditLog(store, clock);
  const authority = await CertificateAuthority.open({ store, keys, audit, clock, options: { baseUrl: BASE_URL } });
  await authority.initialize();
  const signers = await ensureOcspSigners({ authority, keys, store });
  const file = (name: string, content: string | Uint8Array) => {
    const path = join(dir, name);
    writeFileSync(path, content);
    return path;
  };
  const rootPem = toPem(authority.caCertificate('root'), 'CERTIFICATE');
  const issuingPem = toPem(authority.caCertificate('issuing'), 'CERTIFICATE');
  const files = { root: file('root.pem', rootPem), issuing: file('issuing.pem', issuingPem), chain: file('chain.pem', rootPem + issuingPem) };
  let n = 0;
  return {
    dir, store, keys, authority, signers, file, files,
    async issue(ca: string, name: string) {
      const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const record = await authority.issue({
        ca, profile: 'device', subject: [{ type: 'C', value: 'CN' }, { type: 'O', value: 'yinxin test' }, { type: 'CN', value: `${name} ${++n}` }],
        publicKeyInfo: new Uint8Array(publicKey.export({ type: 'spki', format: 'der' })),
      }, { actor: 'operator:test' });
      return { record, file: file(`${name}.pem`, toPem(record.der, 'CERTIFICATE')) };
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface RunningResponder {
  responder: OcspResponder;
  app: FastifyInstance;
  url: string;
  close(): Promise<void>;
}

/** The responder behind its routes on 127.0.0.1, port chosen by the system. */
export async function startResponder(fx: Pick<OcspFixture, 'store' | 'signers'>, options: OcspResponderOptions = {}, clock: Clock = systemClock): Promise<RunningResponder> {
  const responder = new OcspResponder({ store: fx.store, clock, signers: fx.signers, options });
  responder.start();
  const app = Fastify({ logger: false });
  await app.register(ocspRoutes, { responder });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    responder, app, url: `http://127.0.0.1:${port}/ocsp`,
    close: async () => {
      await app.close();
      await responder.stop();
    },
  };
}

/** Runs a command; returns its exit code and combined output (never throws on a non-zero exit). */
export function run(command: string, args: string[], input?: Uint8Array | string): { code: number; out: string; stdout: Buffer } {
  const r = spawnSync(command, args, { input, maxBuffer: 64 << 20 });
  return { code: r.status ?? -1, out: `${r.stdout?.toString('latin1') ?? ''}${r.stderr?.toString() ?? ''}`, stdout: r.stdout ?? Buffer.alloc(0) };
}

/** The async variant, for clients talking to a server in this same process. */
export async function runAsync(command: string, args: string[]): Promise<{ code: number; out: string }> {
  const { spawn } = await import('node:child_process');
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d.toString(); });
    child.stderr.on('data', (d) => { out += d.toString(); });
    child.on('close', (code) => resolve({ code: code ?? -1, out }));
  });
}

export function opensslVersion(): string {
  return execFileSync('openssl', ['version']).toString().trim();
}
