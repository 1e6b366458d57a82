/**
 * A user's SSO sessions, for the admin API (/api/v1/idp/users/:id/sessions) and the user's own
 * account page (/idp/account/sessions): listing them, and ending one or all of them. Ending a
 * session removes it and the grants and tokens of every application signed in through it, then
 * notifies those applications by back-channel logout (OIDC Back-Channel Logout 1.0 s2.5), so a
 * slow or unreachable application never keeps a session alive.
 *
 * A session is named by its `uid` (oidc-provider's stable session identifier, also the `sid`
 * basis), never by its storage id, which is the value of the `_session` cookie.
 */
import type { OidcStorage } from './adapter.ts';
import type { OidcProvider } from './provider.ts';

export interface SessionSummary {
  uid: string;
  /** Seconds since the epoch of the last sign-in (or step-up) in this session. */
  loginTs?: number;
  acr?: string;
  amr?: string[];
  /** Client ids of the applications signed in through this session. */
  applications: string[];
  expiresAt: string;
}

interface SessionAuthorization {
  sid?: string;
  grantId?: string;
}

export function sessionsOf(storage: OidcStorage, userId: string): SessionSummary[] {
  const out: SessionSummary[] = [];
  for (const { payload, expiresAt } of storage.entries('Session')) {
    if (payload.accountId !== userId) continue;
    out.push({
      uid: payload.uid as string, loginTs: payload.loginTs as number | undefined, acr: payload.acr as string | undefined, amr: payload.amr as string[] | undefined,
      applications: Object.keys((payload.authorizations as Record<string, unknown> | undefined) ?? {}), expiresAt: new Date(expiresAt).toISOString(),
    });
  }
  return out;
}

/**
 * Ends a user's sessions (all of them, or only the one named `only.uid`): the session, and the
 * grants and tokens of each application in it, are removed; then each application with a
 * back-channel logout URI is told. A uid that is not one of this user's sessions ends nothing.
 * Returns the uids ended.
 */
export async function endSessions(o: { storage: OidcStorage; provider: OidcProvider }, userId: string, only?: { uid: string }): Promise<string[]> {
  const ended: Array<{ uid: string; authorizations: Record<string, SessionAuthorization> }> = [];
  for (const { id, payload } of sessionEntries(o.storage, only?.uid)) {
    if (payload.accountId !== userId) continue;
    const authorizations = (payload.authorizations ?? {}) as Record<string, SessionAuthorization>;
    await o.storage.destroy('Session', id);
    for (const a of Object.values(authorizations)) {
      if (!a.grantId) continue;
      await o.storage.revokeByGrantId(a.grantId);
      await o.storage.destroy('Grant', a.grantId);
    }
    ended.push({ uid: payload.uid as string, authorizations });
  }
  await Promise.all(ended.flatMap(({ authorizations }) => Object.entries(authorizations).map(async ([clientId, a]) => {
    const client = await o.provider.Client.find(clientId).catch(() => undefined);
    if (client?.backchannelLogoutUri) await client.backchannelLogout(userId, a.sid).catch(() => undefined);
  })));
  return ended.map((e) => e.uid);
}

function sessionEntries(storage: OidcStorage, uid: string | undefined): Array<{ id: string; payload: Record<string, unknown> }> {
  if (uid === undefined) return [...storage.entries('Session')];
  const ref = storage.uidRef(uid);
  const payload = ref?.[0] === 'Session' ? storage.find('Session', ref[1]) : undefined;
  return payload && ref ? [{ id: ref[1], payload }] : [];
}
