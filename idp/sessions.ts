/**
 * A user's SSO sessions, for the admin API (/api/v1/idp/users/:id/sessions) and the user's own
 * account page (/idp/account/sessions): listing them, and ending one or all of them. Ending a
 * session removes it and the grants and tokens of every application signed in through it, in one
 * transaction with the audit record of whoever ended it (design rule: a state change and its
 * audit record are one transaction), then notifies those applications by back-channel logout
 * (OIDC Back-Channel Logout 1.0 s2.5), so a slow or unreachable application never keeps a
 * session alive.
 *
 * A session is named by its `uid` (oidc-provider's stable session identifier, also the `sid`
 * basis), never by its storage id, which is the value of the `_session` cookie.
 */
import type { AuditInput, AuditLog } from '../audit/types.ts';
import type { OidcEntriesTx, OidcStorage } from './adapter.ts';
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

/** A session ended in a transaction: what its back-channel logout needs once the transaction commits. */
export interface EndedSession {
  uid: string;
  authorizations: Record<string, SessionAuthorization>;
}

/**
 * Ends a user's sessions (all of them, or only the one named `only.uid`) inside the caller's
 * transaction: each session, and the grants and tokens of each application in it, are removed.
 * A uid that is not one of this user's sessions ends nothing. Tell the applications with
 * notifyEnded() once the transaction has committed.
 */
export function endSessionsIn(entries: OidcEntriesTx, storage: OidcStorage, userId: string, only?: { uid: string }): EndedSession[] {
  const ended: EndedSession[] = [];
  const candidates = only ? [entries.sessionByUid(only.uid)].filter((s) => s !== undefined) : [...storage.entries('Session')];
  for (const { id, payload } of candidates) {
    if (payload.accountId !== userId) continue;
    const removed = entries.endSession(id);
    if (removed) ended.push({ uid: removed.uid as string, authorizations: (removed.authorizations ?? {}) as Record<string, SessionAuthorization> });
  }
  return ended;
}

/** Back-channel logout (OIDC Back-Channel Logout 1.0 s2.5) to each application of the ended sessions that registered a URI. */
export async function notifyEnded(provider: OidcProvider, userId: string, ended: EndedSession[]): Promise<void> {
  await Promise.all(ended.flatMap(({ authorizations }) => Object.entries(authorizations).map(async ([clientId, a]) => {
    const client = await provider.Client.find(clientId).catch(() => undefined);
    if (client?.backchannelLogoutUri) await client.backchannelLogout(userId, a.sid).catch(() => undefined);
  })));
}

/**
 * Ends a user's sessions (see endSessionsIn) with the audit record `record(endedUids)` in the same
 * transaction, then tells the applications. Returns the uids ended.
 */
export async function endSessions(o: { storage: OidcStorage; provider: OidcProvider; audit: AuditLog }, userId: string, only: { uid: string } | undefined,
  record: (ended: string[]) => AuditInput): Promise<string[]> {
  const ended = await o.storage.transaction((tx, entries) => {
    const ended = endSessionsIn(entries, o.storage, userId, only);
    o.audit.append(tx, record(ended.map((e) => e.uid)));
    return ended;
  });
  await notifyEnded(o.provider, userId, ended);
  return ended.map((e) => e.uid);
}
