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
import { ensureOcspSigners, loadOcspSigners, OcspResponder, prewarmInBackground } from '../ocsp/index.ts';
import { CertificateAuthority, CrlPublisher, readSubjectPublicKey, RegistrationAuthority, type Subject } from '../ca/index.ts';
import type { Signer } from '../hsm/signer.ts';
import type { Table } from '../store/store.ts';
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
  const ocsp = new OcspResponder({
    store, clock, signers: await loadOcspSigners(store, keys),
    onError: (e, what) => logger.error({ err: e, what }, 'OCSP background work failed; it is retried'),
  });
  ocsp.start();
  void prewarmInBackground(ocsp, logger);

  const serviceCerts = store.table<ServiceCertificateRef>('appliance.service-certificates');
  const tsaSigner = await ensureKeyPair(keys, TSA_KEY_LABEL, logger);
  const tsaCertificate = await ensureServiceCertificate(a, authority, serviceCerts, 'tsa', tsaSigner,
    [{ type: 'C', value: 'CN' }, { type: 'O', value: 'yinxin' }, { type: 'CN', value: 'yinxin Time-Stamping Authority' }]);
  const timeGuard = new TimeGuard({ clock, syncCheck: syncCheckOf(config) });
  timeGuard.start();
  const tsa = createTimeStampAuthority({
    signer: tsaSigner,
    certificate: tsaCertificate,
    chain: authority.caChain(ISSUING_CA),
    store, audit, clock, timeGuard,
    policy: { default: config.tsa.policy, accepted: config.tsa.acceptedPolicies },
    precisionMs: config.tsa.precisionMs,
    onSystemFailure: (e) => logger.error({ err: e }, 'time-stamping failed (systemFailure answered)'),
  });

  const idp = await openIdentityProvider({
    store, keys, audit, clock, logger,
    config: { issuer: config.httpsUrl, proxy: config.trustProxy },
    authorities: authority,
    roleCertificates: { attributes, certificates: authority },
  });
  const seals = new SealRegistry({
    store, keys, audit, clock, ca: authority, timeStamper: (query) => tsa.respond(query), issuingCa: ISSUING_CA,
    validationData: applianceValidationData({ respond: (query) => ocsp.respond(query), cas: authority, crlOf: (ca) => crls.current(ca)?.der }),
  });
  const sealVerifyOptions: SealVerifyOptions = { trustAnchors: [authority.caCertificate(ROOT_CA)], statusOf: caStatusLookup(authority) };

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
      await crls.stop();
    },
  };
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
