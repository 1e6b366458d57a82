/**
 * The services' cores, wired to the store, the HSM and each other: the CA hierarchy with its RA
 * and CRL publisher, and the time-stamping authority with its certificate from the issuing CA.
 * First start creates what is missing (CA keys and certificates, service keys and certificates);
 * later starts load it. Each service certificate is re-issued when it nears expiry or when its
 * key in the HSM no longer matches.
 */
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import { AttributeAuthority } from '../ca/attribute-authority.ts';
import { buildPkcs12 } from '../ca/pkcs12.ts';
import { ensureOcspSigners, loadOcspSigners, OcspResponder, prewarmInBackground, reloadOcspSignersEvery } from '../ocsp/index.ts';
import { CertificateAuthority, CrlPublisher, readSubjectPublicKey, RegistrationAuthority, type Subject } from '../ca/index.ts';
import { YinxinError } from '../common/errors.ts';
import type { Signer } from '../hsm/signer.ts';
import type { Table } from '../store/store.ts';
import { ThreadedCommitter } from '../store/commit-thread.ts';
import type { Committer } from '../store/committer.ts';
import { chronySyncCheck, createTimeStampAuthority, fileSyncCheck, timedatectlSyncCheck, TimeGuard, type SyncCheck, type TimeStampAuthority } from '../tsa/index.ts';
import { openIdentityProvider, type IdentityProvider } from '../idp/index.ts';
import { applianceValidationData, caStatusLookup, SealRegistry, type SealVerifyOptions } from '../seal/index.ts';
import type { Config } from './config.ts';
import { ensureKeyPair, type Appliance } from './context.ts';
import type { TlsIssuer } from './tls.ts';

export const ROOT_CA = 'root';
export const ISSUING_CA = 'issuing';
export const TSA_KEY_LABEL = 'tsa/signing';

export interface Services {
  authority: CertificateAuthority;
  attributes: AttributeAuthority;
  ocsp: OcspResponder;
  idp: IdentityProvider;
  seals: SealRegistry;
  /** What seal verification trusts: yinxin's root (and any roots an administrator adds later). */
  sealVerifyOptions: SealVerifyOptions;
  ra: RegistrationAuthority;
  crls: CrlPublisher;
  tsa: TimeStampAuthority;
  timeGuard: TimeGuard;
  /** Issues the appliance's TLS certificate from the issuing CA. */
  tlsIssuer: TlsIssuer;
  stop(): Promise<void>;
}

interface ServiceCertificateRef {
  ca: string;
  serial: string;
}

const RENEW_BEFORE_MS = 30 * 86400_000;
const SERVICE_CERTIFICATES = 'appliance.service-certificates';

export async function openServices(a: Omit<Appliance, 'services'>): Promise<Services> {
  const { store, keys, audit, clock, config, logger } = a;
  const authority = await CertificateAuthority.open({ store, keys, audit, clock, options: { baseUrl: config.publicUrl } });
  await authority.initialize();
  const ra = await RegistrationAuthority.open({ store, keys, audit, authority, buildPkcs12 });
  const crls = new CrlPublisher({ store, audit, clock, authority });
  crls.onError = (e, ca) => logger.error({ err: e, ca }, 'CRL publication failed; it is retried on the next check');
  crls.start();

  const attributes = await AttributeAuthority.open({ store, keys, audit, clock, authority, baseUrl: config.publicUrl });
  await attributes.initialize();
  await ensureOcspSigners({ authority, keys, store });
  const ocsp = await startOcspResponder(a);

  const serviceCerts = store.table<ServiceCertificateRef>(SERVICE_CERTIFICATES);
  const tsaSigner = await ensureKeyPair(keys, TSA_KEY_LABEL, logger);
  const tsaCertificate = await ensureServiceCertificate(a, authority, serviceCerts, 'tsa', tsaSigner,
    [{ type: 'C', value: 'CN' }, { type: 'O', value: 'yinxin' }, { type: 'CN', value: 'yinxin Time-Stamping Authority' }]);
  // One commit thread for the records written on hot paths: a seal's usage record and its
  // time-stamp token's record, asked for in the same turn, share one transaction.
  const committer = new ThreadedCommitter(store, audit);
  const { tsa, timeGuard } = startTimeStampAuthority(a, authority, tsaSigner, tsaCertificate, committer);

  const idp = await openIdentityProvider({
    store, keys, audit, clock, logger,
    config: { issuer: config.httpsUrl, proxy: config.trustProxy },
    authorities: authority,
    roleCertificates: { attributes, certificates: authority },
  });
  const seals = new SealRegistry({
    store, keys, audit, clock, ca: authority, timeStamper: (query) => tsa.respond(query), issuingCa: ISSUING_CA, committer,
    validationData: applianceValidationData({ respond: (query) => ocsp.respond(query), cas: authority, crlOf: (ca) => crls.current(ca)?.der }),
  });
  const sealVerifyOptions = sealVerifyOptionsOf(authority);

  const tlsIssuer: TlsIssuer = async (spki, names) => {
    const record = await authority.issue({
      ca: ISSUING_CA, profile: 'appliance-tls',
      subject: [{ type: 'O', value: 'yinxin' }, { type: 'CN', value: names[0] }],
      san: { dns: names.filter((n) => !isIP(n)), ip: names.filter((n) => isIP(n)) },
      publicKeyInfo: spki,
    }, { actor: 'system' });
    return [record.der, ...authority.caChain(ISSUING_CA)];
  };

  return {
    authority, attributes, ocsp, ra, crls, tsa, timeGuard, tlsIssuer, idp, seals, sealVerifyOptions,
    async stop() {
      await ocsp.stop();
      await idp.stop();
      timeGuard.stop();
      await tsa.close();
      await committer.close();
      await crls.stop();
    },
  };
}

/** What the public port serves: the part of the services an extra public process (appliance/public-worker.ts) runs too. */
export type PublicServices = Pick<Services, 'authority' | 'attributes' | 'ocsp' | 'crls' | 'tsa' | 'timeGuard' | 'sealVerifyOptions' | 'stop'>;

/**
 * The public services over what the appliance's main process created: nothing is created or
 * renewed here (the main process does that before it starts public processes), and the CRL
 * schedule stays with the main process. Everything read comes from the shared store.
 */
export async function openPublicServices(a: Pick<Appliance, 'config' | 'logger' | 'clock' | 'store' | 'keys' | 'audit'>): Promise<PublicServices> {
  const { store, keys, audit, clock } = a;
  const authority = await CertificateAuthority.open({ store, keys, audit, clock, options: { baseUrl: a.config.publicUrl } });
  const attributes = await AttributeAuthority.open({ store, keys, audit, clock, authority, baseUrl: a.config.publicUrl });
  const crls = new CrlPublisher({ store, audit, clock, authority });
  const ocsp = await startOcspResponder(a);
  // The main process renews the OCSP signers and the TSA certificate; they are re-read here.
  const stopReloading = reloadOcspSignersEvery(ocsp, store, keys, 60_000, (e) => a.logger.error({ err: e }, 'reloading the OCSP signers failed'));
  const ref = store.table<ServiceCertificateRef>(SERVICE_CERTIFICATES).get('tsa');
  const tsaCertificate = ref && authority.get(ref.ca, ref.serial);
  if (!tsaCertificate) throw new YinxinError('internal', 'the TSA has no certificate yet: a public process starts after the appliance has created it');
  const committer = new ThreadedCommitter(store, audit);
  const { tsa, timeGuard } = startTimeStampAuthority(a, authority, await keys.getSigner(TSA_KEY_LABEL), tsaCertificate.der, committer);
  return {
    authority, attributes, ocsp, crls, tsa, timeGuard, sealVerifyOptions: sealVerifyOptionsOf(authority),
    async stop() {
      stopReloading();
      await ocsp.stop();
      timeGuard.stop();
      await tsa.close();
      await committer.close();
    },
  };
}

async function startOcspResponder(a: Pick<Appliance, 'store' | 'keys' | 'clock' | 'logger'>): Promise<OcspResponder> {
  const ocsp = new OcspResponder({
    store: a.store, clock: a.clock, signers: await loadOcspSigners(a.store, a.keys),
    onError: (e, what) => a.logger.error({ err: e, what }, 'OCSP background work failed; it is retried'),
  });
  ocsp.start();
  void prewarmInBackground(ocsp, a.logger);
  return ocsp;
}

function startTimeStampAuthority(a: Pick<Appliance, 'store' | 'audit' | 'clock' | 'config' | 'logger'>, authority: CertificateAuthority, signer: Signer, certificate: Uint8Array, committer: Committer): { tsa: TimeStampAuthority; timeGuard: TimeGuard } {
  const { config, logger } = a;
  const timeGuard = new TimeGuard({ clock: a.clock, syncCheck: syncCheckOf(config) });
  timeGuard.start();
  const tsa = createTimeStampAuthority({
    signer,
    certificate,
    chain: authority.caChain(ISSUING_CA),
    store: a.store, audit: a.audit, clock: a.clock, timeGuard,
    policy: { default: config.tsa.policy, accepted: config.tsa.acceptedPolicies },
    precisionMs: config.tsa.precisionMs,
    onSystemFailure: (e) => logger.error({ err: e }, 'time-stamping failed (systemFailure answered)'),
    committer,
  });
  return { tsa, timeGuard };
}

function sealVerifyOptionsOf(authority: CertificateAuthority): SealVerifyOptions {
  return { trustAnchors: [authority.caCertificate(ROOT_CA)], statusOf: caStatusLookup(authority) };
}

async function ensureServiceCertificate(a: Omit<Appliance, 'services'>, authority: CertificateAuthority, refs: Table<ServiceCertificateRef>, purpose: 'tsa' | 'ocsp-signer', signer: Signer, subject: Subject): Promise<Uint8Array> {
  const ref = refs.get(purpose);
  const current = ref ? authority.get(ref.ca, ref.serial) : undefined;
  const keyId = Buffer.from(readSubjectPublicKey(signer.publicKeyInfo).keyIdentifier).toString('hex');
  const fresh = current && current.status === 'good' && current.keyIdentifier === keyId
    && new Date(current.notAfter).getTime() - a.clock.now().getTime() > RENEW_BEFORE_MS;
  if (current && fresh) return current.der;
  const record = await authority.issueServiceCertificate(ISSUING_CA, purpose, signer, subject);
  await a.store.transaction((tx) => {
    tx.put(refs, purpose, { ca: record.ca, serial: record.serial });
    a.audit.append(tx, { actor: 'system', action: 'service-certificate.install', object: `cert:${record.ca}/${record.serial}`, outcome: 'success', details: { purpose } });
  });
  a.logger.info({ purpose, serial: record.serial }, 'issued a service certificate');
  return record.der;
}

function syncCheckOf(config: Config): SyncCheck | undefined {
  const v = config.tsa.timeSyncCheck;
  if (v === 'chrony') return chronySyncCheck();
  if (v === 'timedatectl') return timedatectlSyncCheck();
  if (v.startsWith('file:')) return fileSyncCheck(v.slice(5));
  return undefined;
}
