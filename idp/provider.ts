/**
 * Builds the oidc-provider instance: authorization code + PKCE (required for every client),
 * refresh tokens with rotation, client credentials, introspection, revocation, RP-initiated and
 * back-channel logout, resource indicators (RFC 8707) with JWT access tokens for registered APIs,
 * userinfo. Hardened per its documentation: devInteractions off, our persistent adapter, cookie
 * keys from the store, every TTL set, `proxy` from the appliance's trustProxy setting.
 */
import { randomBytes } from 'node:crypto';
import Provider, { errors, interactionPolicy } from 'oidc-provider';
import type { Clock } from '../common/clock.ts';
import type { Store } from '../store/store.ts';
import type { OidcStorage, AdapterPayload } from './adapter.ts';
import type { Directory } from './directory.ts';
import { logoutPage, messagePage, pickLang, t, escapeHtml } from './pages.ts';
import type { HsmSigningKey } from './signing-keys.ts';

/** acr values (levels of assurance) by sign-in method. */
export const ACR = {
  password: 'urn:yinxin:loa:password',
  mfa: 'urn:yinxin:loa:mfa',
  certificate: 'urn:yinxin:loa:certificate',
} as const;

/** The internal client through which CAS logins ride on the OIDC session. */
export const CAS_CLIENT_ID = 'yinxin-cas';

/** The internal client through which a user signs in to their own account page (/idp/account). */
export const ACCOUNT_CLIENT_ID = 'yinxin-account';

/**
 * Does this sign-in lack the second factor the application asks for (its `requireTotp` setting, or
 * `acr_values` naming the mfa level)? A certificate sign-in (amr pop: a private key the user holds,
 * RFC 8176 s2) counts as strong enough for `requireTotp`.
 */
export function secondFactorMissing(session: { amr?: string[] }, requireTotp: boolean, acrValues: string | undefined): boolean {
  const amr = session.amr ?? [];
  if (amr.includes('otp')) return false;
  if ((acrValues ?? '').split(' ').includes(ACR.mfa)) return true;
  return requireTotp && !amr.includes('pop');
}

export interface ProviderTtls {
  accessToken: number;
  authorizationCode: number;
  idToken: number;
  refreshToken: number;
  session: number;
  interaction: number;
  grant: number;
  clientCredentials: number;
}

export const DEFAULT_TTLS: ProviderTtls = {
  accessToken: 600, authorizationCode: 60, idToken: 3600, refreshToken: 14 * 86400,
  session: 10 * 3600, interaction: 600, grant: 14 * 86400, clientCredentials: 600,
};

export interface ProviderOptions {
  issuer: string;
  store: Store;
  clock: Clock;
  directory: Directory;
  storage: OidcStorage;
  signingKeys: HsmSigningKey[];
  ttl?: Partial<ProviderTtls>;
  /** Honour X-Forwarded-* (only behind a reverse proxy that sets them). */
  proxy?: boolean;
  /** Fetch used for back-channel logout calls (tests pass one that trusts their CA). */
  fetch?: (url: string, init: RequestInit) => Promise<Response>;
}

// oidc-provider's own types are not shipped; this is the slice of its API we use.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type OidcProvider = any;

export async function cookieKeys(store: Store): Promise<string[]> {
  const table = store.table<string[]>('idp.secrets');
  const existing = table.get('cookie-keys');
  if (existing?.length) return existing;
  return store.transaction((tx) => {
    const again = tx.get(table, 'cookie-keys');
    if (again?.length) return again;
    const keys = [randomBytes(32).toString('base64url')];
    tx.put(table, 'cookie-keys', keys);
    return keys;
  });
}

/** oidc-provider's Client model, answered from the directory (the secret opened from its seal here, per lookup, never logged). */
export async function clientMetadata(directory: Directory, issuer: string, clientId: string): Promise<AdapterPayload | undefined> {
  if (clientId === CAS_CLIENT_ID) {
    return {
      client_id: CAS_CLIENT_ID, client_name: 'CAS', token_endpoint_auth_method: 'none', grant_types: ['authorization_code'],
      response_types: ['code'], redirect_uris: [new URL('/cas/callback', issuer).href], id_token_signed_response_alg: 'ES256',
    };
  }
  if (clientId === ACCOUNT_CLIENT_ID) {
    return {
      client_id: ACCOUNT_CLIENT_ID, client_name: 'Account', token_endpoint_auth_method: 'none', grant_types: ['authorization_code'],
      response_types: ['code'], redirect_uris: [new URL('/idp/account/callback', issuer).href], id_token_signed_response_alg: 'ES256',
    };
  }
  const app = directory.getApplication(clientId);
  if (!app || app.status !== 'active') return undefined;
  const code = app.grantTypes.includes('authorization_code');
  return {
    client_id: app.clientId,
    client_secret: await directory.clientSecretOf(app),
    client_name: app.name,
    grant_types: app.grantTypes,
    response_types: code ? ['code'] : [],
    redirect_uris: code ? app.redirectUris : [],
    post_logout_redirect_uris: app.postLogoutRedirectUris,
    ...(app.backchannelLogoutUri ? { backchannel_logout_uri: app.backchannelLogoutUri, backchannel_logout_session_required: true } : {}),
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'ES256',
  };
}

export async function buildProvider(o: ProviderOptions): Promise<OidcProvider> {
  const ttl = { ...DEFAULT_TTLS, ...o.ttl };
  const { directory } = o;
  const keys = await cookieKeys(o.store);

  const provider = new Provider(o.issuer, {
    adapter: o.storage.adapterClass(),
    jwks: { keys: o.signingKeys },
    clientDefaults: { grant_types: ['authorization_code'], id_token_signed_response_alg: 'ES256', response_types: ['code'], token_endpoint_auth_method: 'client_secret_basic' },
    enabledJWA: { idTokenSigningAlgValues: ['ES256'], userinfoSigningAlgValues: ['ES256'], introspectionSigningAlgValues: ['ES256'], authorizationSigningAlgValues: ['ES256'] },
    cookies: { keys, long: { httpOnly: true, sameSite: 'lax', signed: true }, short: { httpOnly: true, sameSite: 'lax', signed: true } },
    acrValues: Object.values(ACR),
    scopes: ['openid', 'offline_access', 'profile', 'identity', 'permissions'],
    claims: {
      openid: ['sub', 'acr', 'amr', 'auth_time', 'sid'],
      profile: ['name', 'department', 'department_name', 'position'],
      identity: ['identity_code'],
      permissions: ['permissions', 'roles', 'permission_scopes'],
    },
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    rotateRefreshToken: true,
    issueRefreshToken: async (_ctx: unknown, client: { grantTypeAllowed(g: string): boolean }) => client.grantTypeAllowed('refresh_token'),
    ttl: {
      AccessToken: ttl.accessToken, AuthorizationCode: ttl.authorizationCode, IdToken: ttl.idToken, RefreshToken: ttl.refreshToken,
      Session: ttl.session, Interaction: ttl.interaction, Grant: ttl.grant, ClientCredentials: ttl.clientCredentials,
    },
    interactions: { policy: signInPolicy(directory), url: (_ctx: unknown, interaction: { uid: string }) => `/idp/interaction/${interaction.uid}` },
    findAccount: async (ctx: { oidc?: { client?: { clientId: string } } }, sub: string, token?: { clientId?: string }) => {
      const user = directory.getUser(sub);
      if (!user || user.status !== 'active') return undefined;
      return {
        accountId: sub,
        claims: async () => {
          const clientId = ctx?.oidc?.client?.clientId ?? token?.clientId;
          const app = clientId ? directory.getApplication(clientId) : undefined;
          const dept = user.departmentId ? directory.getDepartment(user.departmentId) : undefined;
          const auth = clientId ? directory.authorizationFor(sub, clientId) : { roles: [], permissions: [], scoped: {} };
          return {
            sub, name: user.name, position: user.position || undefined,
            department: dept?.id, department_name: dept?.name,
            ...(app?.identityCodeAllowed ? { identity_code: user.identityCode } : {}),
            permissions: auth.permissions, roles: auth.roles,
            ...(Object.keys(auth.scoped).length ? { permission_scopes: auth.scoped } : {}),
          };
        },
      };
    },
    extraTokenClaims: async (_ctx: unknown, token: { kind: string; accountId?: string; aud?: string | string[]; resourceServer?: { audience?: string } }) => {
      // JWT access tokens for an application's API carry that application's roles/permissions only.
      const audience = token.resourceServer?.audience;
      if (token.kind !== 'AccessToken' || !token.accountId || !audience) return undefined;
      const app = directory.applicationForResource(audience);
      if (!app) return undefined;
      const auth = directory.authorizationFor(token.accountId, app.clientId);
      return { permissions: auth.permissions, roles: auth.roles, ...(Object.keys(auth.scoped).length ? { permission_scopes: auth.scoped } : {}) };
    },
    features: {
      devInteractions: { enabled: false },
      // A client may introspect or revoke only its own tokens (or, introspection, tokens for its API).
      introspection: {
        enabled: true,
        allowedPolicy: async (_ctx: unknown, client: { clientId: string }, token: { clientId?: string; aud?: string | string[] }) =>
          token.clientId === client.clientId || [token.aud].flat().includes(directory.getApplication(client.clientId)?.resource),
      },
      revocation: { enabled: true, allowedPolicy: async (_ctx: unknown, client: { clientId: string }, token: { clientId?: string }) => token.clientId === client.clientId },
      userinfo: { enabled: true },
      clientCredentials: { enabled: true },
      backchannelLogout: { enabled: true },
      externalSigningSupport: { enabled: true, ack: 'experimental-01' },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx: KoaCtx, form: string) => {
          ctx.type = 'html';
          ctx.body = logoutPage(pickLang(ctx.query?.lang, ctx.get('accept-language')), form);
        },
        postLogoutSuccessSource: async (ctx: KoaCtx) => {
          const lang = pickLang(ctx.query?.lang, ctx.get('accept-language'));
          ctx.type = 'html';
          ctx.body = messagePage(lang, t(lang, 'logoutTitle'), t(lang, 'loggedOut'));
        },
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => undefined,
        getResourceServerInfo: async (_ctx: unknown, resource: string) => {
          const app = directory.applicationForResource(resource);
          if (!app) throw new errors.InvalidTarget();
          return { scope: 'permissions', audience: resource, accessTokenTTL: ttl.accessToken, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } } };
        },
      },
    },
    renderError: async (ctx: KoaCtx, out: Record<string, string>) => {
      const lang = pickLang(ctx.query?.lang, ctx.get('accept-language'));
      ctx.type = 'html';
      ctx.body = messagePage(lang, t(lang, 'error'), `${out.error}: ${out.error_description ?? ''}`);
    },
    fetch: o.fetch ?? ((url: string, init: RequestInit & { dispatcher?: unknown }) => {
      // Back-channel logout URIs are registered by administrators and live on the intranet, which
      // oidc-provider's SSRF guard (it refuses private and loopback addresses) would block.
      const { dispatcher: _ssrfGuard, ...rest } = init;
      return globalThis.fetch(url, rest);
    }),
  });
  provider.proxy = o.proxy ?? false;
  return provider;
}

/**
 * oidc-provider's default prompts, plus a login check 'totp_required': an existing session that
 * lacks the second factor the application asks for goes back through the sign-in interaction,
 * which then asks only for the one-time code (step-up) and updates the session's acr/amr.
 */
function signInPolicy(directory: Directory): unknown {
  const { Check, base } = interactionPolicy;
  const policy = base();
  policy.get('login').checks.add(new Check('totp_required', 'the application requires a second factor', (ctx: StepUpCtx) => {
    const { session, client, params } = ctx.oidc;
    if (!session.accountId) return Check.NO_NEED_TO_PROMPT;
    const requireTotp = directory.getApplication(client.clientId)?.requireTotp === true;
    return secondFactorMissing(session, requireTotp, params.acr_values) ? Check.REQUEST_PROMPT : Check.NO_NEED_TO_PROMPT;
  }));
  return policy;
}

interface StepUpCtx {
  oidc: { session: { accountId?: string; amr?: string[] }; client: { clientId: string }; params: { acr_values?: string } };
}

interface KoaCtx {
  type: string;
  body: unknown;
  query?: Record<string, string | undefined>;
  get(header: string): string;
}

export { escapeHtml };
