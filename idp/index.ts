/**
 * The IdP's public surface. The composition root calls openIdentityProvider() once at start and
 * registers `routes` on the HTTPS app (buildApps), then calls stop() at shutdown.
 */
import type { FastifyInstance } from 'fastify';
import Provider from 'oidc-provider';
import type { Logger } from 'pino';
import type { AuditLog } from '../audit/types.ts';
import type { Clock } from '../common/clock.ts';
import type { KeyStore } from '../hsm/signer.ts';
import type { Store } from '../store/store.ts';
import { OidcStorage } from './adapter.ts';
import { casRoutes, CasService } from './cas.ts';
import { Directory, type LockoutPolicy } from './directory.ts';
import { buildProvider, clientMetadata, cookieKeys, DEFAULT_TTLS, type OidcProvider, type ProviderTtls } from './provider.ts';
import { idpAdminRoutes, interactionRoutes, oidcProviderRoutes } from './routes.ts';
import { accountRoutes } from './account.ts';
import { RoleCertificates, type AttributeCertificateRequests, type HolderCertificates } from './role-certificates.ts';
import { roleCertificateRoutes } from './role-certificate-routes.ts';
import { SigningKeys } from './signing-keys.ts';
import { signingKeyRoutes } from './signing-key-routes.ts';
import { SecretBox } from './secret-box.ts';
import { AddressThrottle } from './address-throttle.ts';
import { CertificateLogin, type CertificateAuthorities, type CertificateLoginOptions } from './certificate-login.ts';
import type { Argon2Params, PasswordPolicy } from '../auth/passwords.ts';

export { Directory } from './directory.ts';
export type { UserRecord, UserView, DepartmentRecord, ApplicationRecord, ApplicationView, RoleRecord, AssignmentRecord, PermissionRecord, Authorization, LockoutPolicy } from './directory.ts';
export { OidcStorage } from './adapter.ts';
export { SigningKeys, HsmSigningKey, ecdsaDerToJose } from './signing-keys.ts';
export { ACR, CAS_CLIENT_ID, DEFAULT_TTLS } from './provider.ts';
export { CasService } from './cas.ts';
export { CertificateLogin, type CertificateAuthorities } from './certificate-login.ts';

export interface IdentityProviderConfig {
  /** The issuer: the appliance's HTTPS URL (config.httpsUrl), e.g. https://127.0.0.1:8443. */
  issuer: string;
  /** Honour X-Forwarded-* (appliance trustProxy). */
  proxy?: boolean;
  ttl?: Partial<ProviderTtls>;
  argon2?: Argon2Params;
  passwordPolicy?: PasswordPolicy;
  lockout?: LockoutPolicy;
  /** How often expired tokens/sessions are swept from the store. */
  sweepIntervalMs?: number;
}

export interface IdentityProviderOptions {
  store: Store;
  keys: KeyStore;
  audit: AuditLog;
  clock: Clock;
  config: IdentityProviderConfig;
  logger?: Logger;
  /**
   * yinxin's CAs (services.authority): enables certificate login (certificate-login.ts). The HTTPS
   * server must then request client certificates (requestCert: true, rejectUnauthorized: false).
   */
  authorities?: CertificateAuthorities;
  /**
   * The attribute authority and the CA (services.attributes, services.authority): enables exporting a
   * user's roles as an attribute certificate request (role-certificates.ts).
   */
  roleCertificates?: { attributes: AttributeCertificateRequests<unknown>; certificates: HolderCertificates };
  /** Revocation status source for certificate login (default: the CA's certificate records). */
  revocationStatus?: CertificateLoginOptions['revocationStatus'];
  /** Fetch for back-channel logout and CAS single logout (tests pass one trusting their CA). */
  fetch?: (url: string, init: RequestInit) => Promise<Response>;
}

export interface IdentityProvider {
  provider: OidcProvider;
  directory: Directory;
  storage: OidcStorage;
  signingKeys: SigningKeys;
  cas: CasService;
  /** Registers everything on the HTTPS app: provider, sign-in pages, CAS, /idp/check, /api/v1/idp. */
  routes(app: FastifyInstance): Promise<void>;
  stop(): Promise<void>;
}

export async function openIdentityProvider(o: IdentityProviderOptions): Promise<IdentityProvider> {
  const { store, clock, audit, keys, config } = o;
  const issuer = config.issuer.replace(/\/$/, '');
  const secrets = new SecretBox(keys);
  const directory = new Directory({ store, secrets, audit, clock, argon2: config.argon2, passwordPolicy: config.passwordPolicy, lockout: config.lockout });
  const migrated = await directory.migrateSecrets();
  if (migrated) o.logger?.info({ sealed: migrated }, 'IdP secrets stored in clear by an earlier version are now sealed under the HSM');
  const storage = new OidcStorage({ store, clock, clients: (id) => clientMetadata(directory, issuer, id) });
  const ttl = { ...DEFAULT_TTLS, ...config.ttl };
  const signingKeys = new SigningKeys({ keys, store, audit, clock, overlapSeconds: Math.max(ttl.idToken, ttl.accessToken) + 300 });
  const provider = await buildProvider({ issuer, store, clock, directory, storage, signingKeys: await signingKeys.load(), ttl, proxy: config.proxy, fetch: o.fetch });
  signingKeys.attach(provider);
  const addressThrottle = new AddressThrottle({ store, clock });
  const certificateLogin = o.authorities ? new CertificateLogin({ authorities: o.authorities, directory, clock, revocationStatus: o.revocationStatus }).handler() : undefined;
  const sessionAlive = (uid: string) => storage.sessionByUid(uid) !== undefined;
  const cas = new CasService({ store, clock, directory, audit, issuer, sessionAlive, fetch: o.fetch });
  // CAS single logout whenever an SSO session ends: RP-initiated logout (oidc-provider destroys the
  // session itself, then emits end_session.success; a logout from one application only keeps it),
  // and every end through sessions.ts (/cas/logout, admin and self-service revocation).
  const casLogout = (uid: string) => void cas.singleLogout(uid).catch((e) => o.logger?.warn({ err: e }, 'CAS single logout failed'));
  provider.on('end_session.success', (ctx: { oidc?: { session?: { uid?: string; destroyed?: boolean } } }) => {
    const session = ctx.oidc?.session;
    if (session?.destroyed && session.uid) casLogout(session.uid);
  });
  storage.onSessionEnd(({ uid }) => casLogout(uid));
  storage.auditProviderSessionEnds(audit, (id) => {
    // oidc-provider's request context (AsyncLocalStorage): a logout destroys the request's own
    // session; a renewal at sign-in destroys the old id of a session that lives on under a new one.
    const ctx = Provider.ctx as { oidc?: { route?: string; session?: { id?: string }; client?: { clientId?: string } } } | undefined;
    if (ctx?.oidc?.route !== 'end_session_confirm' || ctx.oidc.session?.id !== id) return undefined;
    const clientId = ctx.oidc.client?.clientId;
    return (session) => typeof session.accountId !== 'string' ? undefined : {
      actor: `user:${session.accountId}`, action: 'idp.logout', object: `user:${session.accountId}`, outcome: 'success',
      details: { via: 'oidc', sessions: [session.uid], ...(clientId ? { clientId } : {}) },
    };
  });
  for (const event of ['grant.error', 'server_error', 'authorization.error', 'end_session.error', 'introspection.error', 'revocation.error', 'userinfo.error']) {
    provider.on(event, (_ctx: unknown, err: Error) => o.logger?.debug({ err, event }, 'IdP protocol error'));
  }
  provider.on('backchannel.error', (_ctx: unknown, err: Error, clientId: string) => o.logger?.warn({ err, clientId }, 'back-channel logout failed'));
  const sweep = setInterval(() => {
    void storage.sweep().catch((e) => o.logger?.warn({ err: e }, 'sweeping expired IdP entries failed'));
    void cas.sweep().catch((e) => o.logger?.warn({ err: e }, 'sweeping expired CAS entries failed'));
    void addressThrottle.sweep().catch((e) => o.logger?.warn({ err: e }, 'sweeping sign-in throttle entries failed'));
  }, config.sweepIntervalMs ?? 60_000);
  sweep.unref();
  return {
    provider, directory, storage, signingKeys, cas,
    async routes(app) {
      await oidcProviderRoutes(app, { provider });
      await app.register(async (scope) => interactionRoutes(scope, { provider, directory, storage, certificateLogin, addressThrottle, audit }));
      await app.register(async (scope) => casRoutes(scope, { cas, provider, directory, storage, audit }));
      await app.register(async (scope) => idpAdminRoutes(scope, { directory, storage, provider, audit }));
      await app.register(async (scope) => signingKeyRoutes(scope, { signingKeys }));
      const [csrfKey] = await cookieKeys(store);
      await app.register(async (scope) => accountRoutes(scope, { provider, storage, directory, audit, issuer, csrfKey }));
      if (o.roleCertificates) {
        const roleCertificates = new RoleCertificates({ directory, clock, ...o.roleCertificates });
        await app.register(async (scope) => roleCertificateRoutes(scope, { roleCertificates }));
      }
    },
    async stop() {
      clearInterval(sweep);
    },
  };
}
