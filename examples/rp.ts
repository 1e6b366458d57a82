/**
 * A tiny relying-party web app using openid-client, to see single sign-on work end to end.
 * Start two of them (see docs/idp.md "Try it"):
 *
 *   YINXIN_ISSUER=https://127.0.0.1:8443 CLIENT_ID=app-a CLIENT_SECRET=... PORT=3001 node examples/rp.ts
 *   YINXIN_ISSUER=https://127.0.0.1:8443 CLIENT_ID=app-b CLIENT_SECRET=... PORT=3002 node examples/rp.ts
 *
 * Sign in on one, open the other: no second login. Sign out on either: both are signed out
 * (back-channel logout to /backchannel-logout). YINXIN_CA=<pem file> trusts the appliance's CA
 * (default: data/tls/ca.pem if present), so nothing disables TLS verification.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import * as client from 'openid-client';
import { Agent, fetch as undiciFetch } from 'undici';

const issuer = new URL(process.env.YINXIN_ISSUER ?? 'https://127.0.0.1:8443');
const clientId = process.env.CLIENT_ID ?? 'app-a';
const clientSecret = process.env.CLIENT_SECRET ?? '';
const port = Number(process.env.PORT ?? 3001);
const base = `http://127.0.0.1:${port}`;
const caFile = process.env.YINXIN_CA ?? 'data/tls/ca.pem';
const agent = existsSync(caFile) ? new Agent({ connect: { ca: readFileSync(caFile, 'utf8') } }) : undefined;
const customFetch = ((url: string, init: RequestInit) => undiciFetch(url, { ...(init as object), ...(agent ? { dispatcher: agent } : {}) } as never)) as unknown as client.CustomFetch;

const config = await client.discovery(issuer, clientId, clientSecret, undefined, { [client.customFetch]: customFetch });
/** Browser sessions of this app: cookie -> what we know. Back-channel logout removes them by sid. */
const sessions = new Map<string, { pkce?: string; state?: string; claims?: client.IDToken; idToken?: string }>();

function page(res: ServerResponse, body: string): void {
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(`<!DOCTYPE html><html lang="en"><meta charset="utf-8"><title>${clientId}</title><body style="font-family:sans-serif;max-width:40rem;margin:2rem auto"><h1>${clientId}</h1>${body}</body></html>`);
}

function sessionOf(req: IncomingMessage, res: ServerResponse) {
  const id = /(?:^|;\s*)rp=([^;]+)/.exec(req.headers.cookie ?? '')?.[1];
  if (id && sessions.has(id)) return sessions.get(id)!;
  const fresh = randomBytes(16).toString('hex');
  sessions.set(fresh, {});
  res.setHeader('set-cookie', `rp=${fresh}; HttpOnly; SameSite=Lax; Path=/`);
  return sessions.get(fresh)!;
}

createServer(async (req, res) => {
  try {
    const url = new URL(req.url ?? '/', base);
    const s = sessionOf(req, res);
    if (url.pathname === '/') {
      if (!s.claims) return page(res, '<p>Not signed in.</p><p><a href="/login">Sign in with yinxin</a></p>');
      return page(res, `<p>Signed in as <b>${s.claims.name}</b> (${s.claims.sub}).</p><pre>${JSON.stringify(s.claims, null, 2)}</pre><p><a href="/logout">Sign out everywhere</a></p>`);
    }
    if (url.pathname === '/login') {
      s.pkce = client.randomPKCECodeVerifier();
      s.state = client.randomState();
      const to = client.buildAuthorizationUrl(config, { redirect_uri: `${base}/callback`, scope: 'openid profile permissions', state: s.state, code_challenge: await client.calculatePKCECodeChallenge(s.pkce), code_challenge_method: 'S256' });
      return res.writeHead(303, { location: to.href }).end();
    }
    if (url.pathname === '/callback') {
      const tokens = await client.authorizationCodeGrant(config, url, { pkceCodeVerifier: s.pkce, expectedState: s.state });
      s.claims = tokens.claims();
      s.idToken = tokens.id_token;
      return res.writeHead(303, { location: '/' }).end();
    }
    if (url.pathname === '/logout') {
      const to = client.buildEndSessionUrl(config, { id_token_hint: s.idToken ?? '', post_logout_redirect_uri: `${base}/` });
      s.claims = undefined;
      return res.writeHead(303, { location: to.href }).end();
    }
    if (url.pathname === '/backchannel-logout' && req.method === 'POST') {
      let body = '';
      for await (const chunk of req) body += chunk;
      const token = new URLSearchParams(body).get('logout_token') ?? '';
      // A real app verifies the logout token's signature against the JWKS (OIDC Back-Channel Logout 1.0 s2.6).
      const { sub } = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString() || '{}');
      for (const v of sessions.values()) if (v.claims?.sub === sub) v.claims = undefined;
      return res.writeHead(200).end();
    }
    res.writeHead(404).end();
  } catch (e) {
    res.writeHead(500, { 'content-type': 'text/plain' }).end(String((e as Error).message));
  }
}).listen(port, '127.0.0.1', () => console.log(`${clientId} on ${base} (issuer ${issuer.href})`));
