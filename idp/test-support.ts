/**
 * Test harness for the IdP: a real HTTPS server on 127.0.0.1:0 (the appliance's secure app with
 * the IdP's routes, on an LMDB store in a temp directory, self-signed TLS from openssl), a
 * fetch that trusts only that certificate, and a small cookie-carrying "browser" that follows
 * redirects by hand. Not used by the appliance.
 */
import { execFileSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import * as oidc from 'openid-client';
import { pino } from 'pino';
import { Agent, fetch as undiciFetch } from 'undici';
import { buildSecureApp } from '../appliance/app.ts';
import { MetricsRegistry } from '../common/metrics.ts';
import { OperatorService } from '../auth/operators.ts';
import { TableAuditLog } from '../ca/test-support.ts';
import { systemClock, type Clock } from '../common/clock.ts';
import { SoftwareKeyStore } from '../hsm/software.ts';
import type { KeyStore } from '../hsm/signer.ts';
import { openLmdbStore } from '../store/lmdb.ts';
import type { Store } from '../store/store.ts';
import { totp } from './directory.ts';
import { openIdentityProvider, type IdentityProvider, type IdentityProviderOptions } from './index.ts';
import type { CertificateAuthorities } from './certificate-login.ts';

/** A self-signed P-256 certificate for 127.0.0.1 and localhost, made by openssl. */
export function selfSignedTls(dir: string): { key: string; cert: string } {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', join(dir, 'tls.key'), '-out', join(dir, 'tls.crt')], { stdio: 'ignore' });
  return { key: readFileSync(join(dir, 'tls.key'), 'utf8'), cert: readFileSync(join(dir, 'tls.crt'), 'utf8') };
}

export type Fetch = (url: string | URL, init?: RequestInit) => Promise<Response>;

/** fetch that trusts exactly the given CA certificates (and presents a client certificate if given). */
export function trustingFetch(ca: string | string[], client?: { key: string; cert: string }): Fetch {
  const agent = new Agent({ connect: { ca, ...(client ?? {}) } });
  return ((url: string | URL, init?: RequestInit) => undiciFetch(url, { ...(init as object), dispatcher: agent } as never)) as unknown as Fetch;
}

export interface TestIdp {
  issuer: string;
  idp: IdentityProvider;
  app: FastifyInstance;
  store: Store;
  keys: KeyStore;
  audit: TableAuditLog;
  tls: { key: string; cert: string };
  fetch: Fetch;
  operators: OperatorService;
  /** A bearer token of an operator with the idp-admin role. */
  adminToken: string;
  close(): Promise<void>;
}

export async function startTestIdp(o: {
  clock?: Clock; ttl?: Parameters<typeof openIdentityProvider>[0]['config']['ttl'];
  /** Enables certificate login: the CA core (built on the returned store by `authorities(store, keys, audit)`). */
  authorities?: (store: Store, keys: KeyStore, audit: TableAuditLog) => Promise<CertificateAuthorities>;
  /** Enables exporting roles as attribute certificates: the CA and AA cores (after `authorities`). */
  roleCertificates?: (store: Store, keys: KeyStore, audit: TableAuditLog) => Promise<IdentityProviderOptions['roleCertificates']>;
  tls?: { key: string; cert: string };
  /** Argon2 parameters for users' passwords (tests default to cheap ones; the benchmark passes Keycloak's). */
  argon2?: { memoryKiB: number; passes: number; parallelism: number };
} = {}): Promise<TestIdp> {
  const dir = mkdtempSync(join(tmpdir(), 'yinxin-idp-'));
  const clock = o.clock ?? systemClock;
  const store = openLmdbStore(join(dir, 'store'));
  const audit = new TableAuditLog(store, clock);
  const keys = new SoftwareKeyStore();
  const tls = o.tls ?? selfSignedTls(dir);
  const fetch = trustingFetch(tls.cert);
  const logger = pino({ level: 'silent' });
  const operators = new OperatorService({ store, audit, clock, sessionTtlSeconds: 3600, argon2: { memoryKiB: 64, passes: 1, parallelism: 1 } });
  // The issuer needs the port, known only after listen: reserve it by listening first with a placeholder.
  const probe = await import('node:net').then((net) => new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  }));
  const issuer = `https://127.0.0.1:${probe}`;
  const idp = await openIdentityProvider({
    store, keys, audit, clock, logger, fetch: fetch as never, authorities: o.authorities ? await o.authorities(store, keys, audit) : undefined,
    roleCertificates: o.roleCertificates ? await o.roleCertificates(store, keys, audit) : undefined,
    config: { issuer, ttl: o.ttl, argon2: o.argon2 ?? { memoryKiB: 1024, passes: 1, parallelism: 1 }, lockout: { threshold: 3, baseSeconds: 1, maxSeconds: 2 } },
  });
  const app = await buildSecureApp({
    logger, metrics: new MetricsRegistry(), bodyLimit: 1 << 20, trustProxy: false, health: [], authenticator: operators, version: 'test',
    https: tls, plugins: [(a) => idp.routes(a)],
  });
  if (o.authorities) {
    // What appliance/app.ts does for certificate login: ask for a client certificate, never require one.
    Object.assign(app.server, { requestCert: true, rejectUnauthorized: false });
  }
  await app.listen({ host: '127.0.0.1', port: probe });
  const admin = await operators.createOperator({ kind: 'operator', username: 'root', roles: ['ca-admin'], tokenId: 'x', mustChangePassword: false }, { username: 'idpadmin', roles: ['idp-admin'] });
  const login = await operators.login('idpadmin', admin.password);
  let adminToken = login.token;
  if (login.principal.mustChangePassword) {
    await operators.changePassword(login.principal, admin.password, 'Correct-Horse-9-Battery');
    adminToken = (await operators.login('idpadmin', 'Correct-Horse-9-Battery')).token;
  }
  return {
    issuer, idp, app, store, keys, audit, tls, fetch, operators, adminToken,
    async close() {
      await app.close();
      await idp.stop();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A second IdP on the same store, keys and issuer, as after a restart or in another process: a
 * fresh process memory. Answers through inject() (no listener); close() leaves the store open.
 */
export async function secondInstance(first: TestIdp): Promise<{ app: FastifyInstance; close(): Promise<void> }> {
  const logger = pino({ level: 'silent' });
  const idp = await openIdentityProvider({
    store: first.store, keys: first.keys, audit: first.audit, clock: systemClock, logger, fetch: first.fetch as never,
    config: { issuer: first.issuer, argon2: { memoryKiB: 1024, passes: 1, parallelism: 1 }, lockout: { threshold: 3, baseSeconds: 1, maxSeconds: 2 } },
  });
  const app = await buildSecureApp({
    logger, metrics: new MetricsRegistry(), bodyLimit: 1 << 20, trustProxy: false, health: [], authenticator: first.operators, version: 'test',
    https: first.tls, plugins: [(a) => idp.routes(a)],
  });
  await app.ready();
  return { app, async close() { await app.close(); await idp.stop(); } };
}

/** A browser: carries cookies per host, follows redirects by hand (so tests can stop at the RP's callback), submits forms. */
export class Browser {
  readonly #fetch: Fetch;
  readonly cookies = new Map<string, string>();
  constructor(fetch: Fetch) {
    this.#fetch = fetch;
  }

  async request(url: string, init: { method?: string; form?: Record<string, string> } = {}): Promise<Response> {
    const headers: Record<string, string> = { 'accept-language': 'en' };
    const jar = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    if (jar) headers.cookie = jar;
    let body: string | undefined;
    if (init.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(init.form).toString();
    }
    const res = await this.#fetch(url, { method: init.method ?? (body ? 'POST' : 'GET'), headers, body, redirect: 'manual' });
    for (const c of res.headers.getSetCookie()) {
      const [pair, ...attrs] = c.split(';');
      const i = pair.indexOf('=');
      const name = pair.slice(0, i).trim();
      const value = pair.slice(i + 1).trim();
      const expired = attrs.some((a) => /^\s*expires=/i.test(a) && new Date(a.split('=')[1]).getTime() < Date.now()) || attrs.some((a) => /^\s*max-age=0/i.test(a));
      if (expired || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return res;
  }

  /**
   * Follows redirects from `url` until one leaves the issuer (returned as { redirect }) or a page is
   * shown (returned as { page, url }).
   */
  async follow(url: string, issuer: string, init: { method?: string; form?: Record<string, string> } = {}): Promise<{ redirect?: string; page?: string; status: number; url: string }> {
    let current = url;
    let res = await this.request(current, init);
    for (let hops = 0; hops < 20; hops++) {
      const location = res.headers.get('location');
      if (res.status >= 300 && res.status < 400 && location) {
        const next = new URL(location, current).href;
        if (!next.startsWith(issuer)) return { redirect: next, status: res.status, url: current };
        current = next;
        res = await this.request(current);
        continue;
      }
      return { page: await res.text(), status: res.status, url: current };
    }
    throw new Error('too many redirects');
  }

  /** Posts `form` to the first form of `page` (its action against `issuer`) and follows on, as follow() does. */
  submit(page: string, issuer: string, form: Record<string, string>): ReturnType<Browser['follow']> {
    return this.follow(new URL(formOf(page).action, issuer).href, issuer, { form });
  }
}

/** The action and hidden inputs of the first (or the named) form of a page. */
export function formOf(html: string, id?: string): { action: string; fields: Record<string, string> } {
  const forms = [...html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/g)];
  const form = id ? forms.find((f) => f[1].includes(`id="${id}"`)) : forms[0];
  if (!form) throw new Error(`no form in page: ${html.slice(0, 300)}`);
  const action = /action="([^"]*)"/.exec(form[1])?.[1] ?? '';
  const fields: Record<string, string> = {};
  for (const m of form[2].matchAll(/<input\b[^>]*>/g)) {
    const name = /name="([^"]*)"/.exec(m[0])?.[1];
    const value = /value="([^"]*)"/.exec(m[0])?.[1] ?? '';
    if (name) fields[name] = value.replace(/&amp;/g, '&').replace(/&quot;/g, '"');
  }
  return { action: action.replace(/&amp;/g, '&'), fields };
}

/** An application's back-channel logout endpoint (plain HTTP on 127.0.0.1): the logout tokens it received. */
export async function backchannelListener(): Promise<{ server: Server; url: string; logouts: string[] }> {
  const logouts: string[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      logouts.push(new URLSearchParams(body).get('logout_token') ?? '');
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}/backchannel`, logouts };
}

/**
 * Starts an authorization request (code + PKCE) with openid-client's URL builder and follows it in
 * `browser`; when a login form comes, posts `credentials` to it as a browser would. Returns where it
 * stopped: the redirect back to the application, or a page (a TOTP step, an error).
 */
export async function beginSignIn(browser: Browser, issuer: string, rp: { config: oidc.Configuration; redirect: string },
  credentials?: { login: string; password: string }, extra: Record<string, string> = {}): Promise<{ verifier: string; state: string; redirect?: string; page?: string }> {
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const url = oidc.buildAuthorizationUrl(rp.config, {
    redirect_uri: rp.redirect, scope: 'openid profile', state, code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', ...extra,
  });
  let stop = await browser.follow(url.href, issuer);
  if (credentials && stop.page && /name="password"/.test(stop.page)) {
    stop = await browser.submit(stop.page, issuer, credentials);
  }
  return { verifier, state, redirect: stop.redirect, page: stop.page };
}

export interface TestRelyingParty { config: oidc.Configuration; redirect: string }

/**
 * Two applications registered in the test IdP's directory and discovered by openid-client: `a`
 * signs in with a password alone, `b` requires the TOTP second factor.
 */
export async function registerPasswordAndTotpApps(idp: TestIdp): Promise<Record<'a' | 'b', TestRelyingParty>> {
  const rps = {} as Record<'a' | 'b', TestRelyingParty>;
  for (const name of ['a', 'b'] as const) {
    const redirect = `https://app-${name}.example/cb`;
    const { clientSecret } = await idp.idp.directory.createApplication({ name: 'test' }, { clientId: `app-${name}`, name: `App ${name}`, redirectUris: [redirect], requireTotp: name === 'b' });
    rps[name] = { config: await oidc.discovery(new URL(idp.issuer), `app-${name}`, clientSecret, undefined, { [oidc.customFetch]: idp.fetch as unknown as oidc.CustomFetch }), redirect };
  }
  return rps;
}

/** The TOTP codes a server allowing one step of clock skew accepts now: previous, current ([1]) and next step. */
export function totpCodesNow(secret: string): string[] {
  const step = Math.floor(Date.now() / 30_000);
  return [step - 1, step, step + 1].map((s) => totp(secret, s));
}
