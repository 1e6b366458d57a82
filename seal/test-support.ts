/**
 * Test doubles for the seal tests (not used by the appliance): a CA hierarchy on an in-memory store
 * with software keys, a TSA whose certificate that CA issued, seal credentials from the CA's seal
 * profile, and helpers to run the external validators (openssl, pdfsig, qpdf).
 */
import { spawnSync } from 'node:child_process';
import * as asn1js from 'asn1js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock, type Clock } from '../common/clock.ts';
import { toArrayBuffer, toPem } from '../common/pem.ts';
import { CertificateAuthority } from '../ca/authority.ts';
import { CrlPublisher } from '../ca/crl-publisher.ts';
import { ensureOcspSigners, OcspResponder } from '../ocsp/index.ts';
import type { Subject } from '../ca/profiles.ts';
import { MemoryStore, TableAuditLog } from '../ca/test-support.ts';
import type { AuditLog } from '../audit/types.ts';
import type { Store } from '../store/store.ts';
import { SoftwareKeyStore } from '../hsm/software.ts';
import { createTimeStampAuthority, type TimeStampAuthority } from '../tsa/authority.ts';
import { TimeGuard } from '../tsa/timeguard.ts';
import type { SealCredential, TimeStamper } from './cms.ts';
import { applianceValidationData, type ValidationDataSource } from './ltv.ts';

export const CREDIT_CODE = '91350100M000100Y43';

export function sealSubject(organization: string, sealName: string, code = CREDIT_CODE): Subject {
  return [{ type: 'C', value: 'CN' }, { type: 'O', value: organization }, { type: 'CN', value: sealName }, { type: 'organizationIdentifier', value: code }];
}

export interface SealPki<S extends Store = MemoryStore, A extends AuditLog = TableAuditLog> {
  store: S;
  keys: SoftwareKeyStore;
  audit: A;
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
  const store = new MemoryStore();
  return sealPkiOn(store, new TableAuditLog(store, clock), clock);
}

/**
 * The same on a given store and audit log (a benchmark's LMDB store, so that the CA's records are
 * read from where the appliance reads them). The CA's keys stay software keys.
 */
export function makeSealPkiOn<S extends Store, A extends AuditLog>(store: S, audit: A, clock: Clock = systemClock): Promise<SealPki<S, A>> {
  return sealPkiOn(store, audit, clock);
}

async function sealPkiOn<S extends Store, A extends AuditLog>(store: S, audit: A, clock: Clock): Promise<SealPki<S, A>> {
  const dir = mkdtempSync(join(tmpdir(), 'yinxin-seal-'));
  const keys = new SoftwareKeyStore();
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

/**
 * Byte ranges and the DER in /Contents of every signature and document time-stamp, read with
 * regular expressions (not our parser): the DER cut at its own length (the rest is zero padding),
 * the signed bytes are the two ranges joined, and `contents` is the whole /Contents string.
 */
export function signaturesByRegex(pdf: Uint8Array): Array<{ range: number[]; cms: Uint8Array; signed: Uint8Array; contents: Uint8Array }> {
  const text = Buffer.from(pdf).toString('latin1');
  const out = [];
  for (const m of text.matchAll(/\/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]/g)) {
    const range = m.slice(1, 5).map(Number);
    const contents = new Uint8Array(Buffer.from(text.slice(range[1] + 1, range[2] - 1), 'hex'));
    const cms = contents.slice(0, asn1js.fromBER(toArrayBuffer(contents)).offset);
    const signed = Buffer.concat([pdf.subarray(range[0], range[0] + range[1]), pdf.subarray(range[2], range[2] + range[3])]);
    out.push({ range, cms, signed: new Uint8Array(signed), contents });
  }
  return out;
}

interface QpdfObject { value?: unknown; stream?: { dict: Record<string, unknown>; data?: string } }

/**
 * The DSS as qpdf reads it (its JSON, not our parser): the stream data of /Certs, /OCSPs and /CRLs,
 * and each VRI entry's (keyed by upper-case hex) certificates, OCSP responses and CRLs.
 */
export function dssByQpdf(path: string): { certs: Buffer[]; ocsps: Buffer[]; crls: Buffer[]; vri: string[]; vriEntries: Record<string, { certs: Buffer[]; ocsps: Buffer[]; crls: Buffer[] }> } {
  const r = run('qpdf', ['--json=2', '--json-stream-data=inline', '--decode-level=none', path]);
  const objects = (JSON.parse(r.out).qpdf[1]) as Record<string, QpdfObject>;
  const trailer = objects.trailer.value as Record<string, string>;
  const catalog = objects[`obj:${trailer['/Root']}`].value as Record<string, string>;
  const dss = objects[`obj:${catalog['/DSS']}`].value as Record<string, unknown>;
  const data = (refs: unknown) => ((refs ?? []) as string[]).map((ref) => Buffer.from(objects[`obj:${ref}`].stream!.data!, 'base64'));
  const vri = dss['/VRI'] as Record<string, Record<string, unknown>>;
  const vriEntries = Object.fromEntries(Object.entries(vri).map(([k, e]) => [k.slice(1), { certs: data(e['/Cert']), ocsps: data(e['/OCSP']), crls: data(e['/CRL']) }]));
  return { certs: data(dss['/Certs']), ocsps: data(dss['/OCSPs']), crls: data(dss['/CRLs']), vri: Object.keys(vriEntries), vriEntries };
}
