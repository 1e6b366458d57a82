/**
 * Test doubles for the seal tests (not used by the appliance): a CA hierarchy on an in-memory store
 * with software keys, a TSA whose certificate that CA issued, seal credentials from the CA's seal
 * profile, and helpers to run the external validators (openssl, pdfsig, qpdf).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock, type Clock } from '../common/clock.ts';
import { toPem } from '../common/pem.ts';
import { CertificateAuthority } from '../ca/authority.ts';
import { CrlPublisher } from '../ca/crl-publisher.ts';
import { ensureOcspSigners, OcspResponder } from '../ocsp/index.ts';
import type { Subject } from '../ca/profiles.ts';
import { MemoryStore, TableAuditLog } from '../ca/test-support.ts';
import { SoftwareKeyStore } from '../hsm/software.ts';
import { createTimeStampAuthority, type TimeStampAuthority } from '../tsa/authority.ts';
import { TimeGuard } from '../tsa/timeguard.ts';
import type { SealCredential, TimeStamper } from './cms.ts';
import { applianceValidationData, type ValidationDataSource } from './ltv.ts';

export const CREDIT_CODE = '91350100M000100Y43';

export function sealSubject(organization: string, sealName: string, code = CREDIT_CODE): Subject {
  return [{ type: 'C', value: 'CN' }, { type: 'O', value: organization }, { type: 'CN', value: sealName }, { type: 'organizationIdentifier', value: code }];
}

export interface SealPki {
  store: MemoryStore;
  keys: SoftwareKeyStore;
  audit: TableAuditLog;
  ca: CertificateAuthority;
  clock: Clock;
  tsa: TimeStampAuthority;
  tsaCertificate: Uint8Array;
  timeStamper: TimeStamper;
  /** The CA's OCSP responder core and CRL publisher, as the appliance wires them for B-LT seals. */
  validationData: ValidationDataSource;
  ocsp: OcspResponder;
  crls: CrlPublisher;
  /** root CA certificate (DER) and its PEM file, the -CAfile for openssl. */
  root: Uint8Array;
  rootFile: string;
  /** All CA certificates, PEM, one file. */
  chainFile: string;
  dir: string;
  credential(label: string, organization: string, sealName: string): Promise<SealCredential & { serial: string }>;
  file(name: string, bytes: Uint8Array | string): string;
  cleanup(): void;
}

export async function makeSealPki(clock: Clock = systemClock): Promise<SealPki> {
  const dir = mkdtempSync(join(tmpdir(), 'yinxin-seal-'));
  const store = new MemoryStore();
  const keys = new SoftwareKeyStore();
  const audit = new TableAuditLog(store, clock);
  const ca = await CertificateAuthority.open({ store, keys, audit, clock, options: { baseUrl: 'http://127.0.0.1:8080' } });
  await ca.initialize();
  const tsaSigner = await keys.generateKeyPair('tsa', { type: 'ec', curve: 'P-256' });
  const tsaCert = await ca.issueServiceCertificate('issuing', 'tsa', tsaSigner, [{ type: 'C', value: 'CN' }, { type: 'O', value: 'yinxin' }, { type: 'CN', value: 'yinxin TSA' }]);
  const chain = ca.caChain('issuing');
  const tsa = createTimeStampAuthority({
    signer: tsaSigner, certificate: tsaCert.der, chain, store, clock,
    timeGuard: new TimeGuard({ clock }), policy: { default: '1.2.3.4.1', accepted: [] },
  });
  const ocsp = new OcspResponder({ store, clock, signers: await ensureOcspSigners({ authority: ca, keys, store }) });
  const crls = new CrlPublisher({ store, audit, clock, authority: ca });
  for (const a of ca.listAuthorities()) await crls.publish(a.name);
  const validationData = applianceValidationData({ respond: (q) => ocsp.respond(q), cas: ca, crlOf: (name) => crls.current(name)?.der });
  const root = ca.caCertificate('root');
  const file = (name: string, bytes: Uint8Array | string) => {
    const p = join(dir, name);
    writeFileSync(p, bytes);
    return p;
  };
  const rootFile = file('root.pem', toPem(root, 'CERTIFICATE'));
  const chainFile = file('chain.pem', chain.map((c) => toPem(c, 'CERTIFICATE')).join(''));
  return {
    store, keys, audit, ca, clock, tsa, tsaCertificate: tsaCert.der, root, rootFile, chainFile, dir, file, ocsp, crls, validationData,
    timeStamper: (q) => tsa.respond(q),
    async credential(label, organization, sealName) {
      const signer = await keys.generateKeyPair(label, { type: 'ec', curve: 'P-256' });
      const cert = await ca.issue({ ca: 'issuing', profile: 'seal', subject: sealSubject(organization, sealName), publicKeyInfo: signer.publicKeyInfo }, { actor: 'test' });
      return { signer, certificate: cert.der, chain, serial: cert.serial };
    },
    cleanup: () => {
      void ocsp.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs a tool, returning its exit status and combined output instead of throwing. */
export function run(cmd: string, args: string[], input?: Uint8Array): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, { input, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}
