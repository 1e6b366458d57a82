/**
 * Operator accounts for the API and console: users with roles, password sign-in that yields a
 * session token, API tokens for scripts, and the bootstrap administrator. Core only (no HTTP).
 * The IdP issue later signs humans in through single sign-on: it produces the same Principal,
 * so routes and the authorization table do not change.
 *
 * Bearer tokens look like `yx_<id>_<secret>`: the id finds the record, the secret is compared
 * by SHA-256 in constant time (tokens are 256-bit random, so a fast hash is enough).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { AuditLog } from '../audit/types.ts';
import type { Clock } from '../common/clock.ts';
import { YinxinError } from '../common/errors.ts';
import type { Store, Table } from '../store/store.ts';
import { checkPasswordPolicy, DUMMY_HASH, generateInitialPassword, hashPassword, verifyPassword, type Argon2Params, type PasswordPolicy, DEFAULT_ARGON2, DEFAULT_PASSWORD_POLICY } from './passwords.ts';
import { isRole, type Role } from './roles.ts';

export interface OperatorRecord {
  username: string;
  displayName: string;
  roles: Role[];
  passwordHash: string;
  mustChangePassword: boolean;
  status: 'active' | 'disabled';
  createdAt: string;
  createdBy: string;
  failedLogins: number;
  lockedUntil?: string;
}

export interface TokenRecord {
  id: string;
  kind: 'session' | 'api';
  username: string;
  /** For API tokens: the roles it carries (a subset of the owner's). Sessions carry the owner's current roles. */
  roles?: Role[];
  name?: string;
  secretHash: string;
  createdAt: string;
  expiresAt: string;
}

export interface Principal {
  kind: 'operator' | 'api-token';
  username: string;
  roles: Role[];
  tokenId: string;
  mustChangePassword: boolean;
}

export type OperatorView = Omit<OperatorRecord, 'passwordHash'>;

export interface OperatorServiceOptions {
  store: Store;
  audit: AuditLog;
  clock: Clock;
  sessionTtlSeconds: number;
  argon2?: Argon2Params;
  passwordPolicy?: PasswordPolicy;
  /** Consecutive failures before the account is locked, and the first lock's length (doubling, capped). */
  lockout?: { threshold: number; baseSeconds: number; maxSeconds: number };
}

const USERNAME = /^[a-z][a-z0-9._-]{1,63}$/;
export const BOOTSTRAP_ADMIN = 'admin';

export class OperatorService {
  readonly #store: Store;
  readonly #audit: AuditLog;
  readonly #clock: Clock;
  readonly #operators: Table<OperatorRecord>;
  readonly #tokens: Table<TokenRecord>;
  readonly #ttl: number;
  readonly #argon2: Argon2Params;
  readonly #policy: PasswordPolicy;
  readonly #lockout: { threshold: number; baseSeconds: number; maxSeconds: number };

  constructor(o: OperatorServiceOptions) {
    this.#store = o.store;
    this.#audit = o.audit;
    this.#clock = o.clock;
    this.#operators = o.store.table<OperatorRecord>('auth.operators');
    this.#tokens = o.store.table<TokenRecord>('auth.tokens');
    this.#ttl = o.sessionTtlSeconds;
    this.#argon2 = o.argon2 ?? DEFAULT_ARGON2;
    this.#policy = o.passwordPolicy ?? DEFAULT_PASSWORD_POLICY;
    this.#lockout = o.lockout ?? { threshold: 5, baseSeconds: 30, maxSeconds: 900 };
  }

  /** First start: creates the administrator with a one-time password, returned once (null when operators exist). */
  async bootstrapAdministrator(requestId?: string): Promise<{ username: string; password: string } | null> {
    if (this.#operators.count() > 0) return null;
    const password = generateInitialPassword();
    const passwordHash = await hashPassword(password, this.#argon2);
    const created = await this.#store.transaction((tx) => {
      if (this.#operators.count() > 0) return false;
      tx.put(this.#operators, BOOTSTRAP_ADMIN, this.#newRecord(BOOTSTRAP_ADMIN, 'Bootstrap administrator', ['ca-admin'], passwordHash, 'system'));
      this.#audit.append(tx, { actor: 'system', action: 'operator.bootstrap', object: `operator:${BOOTSTRAP_ADMIN}`, outcome: 'success', requestId, details: { roles: ['ca-admin'] } });
      return true;
    });
    return created ? { username: BOOTSTRAP_ADMIN, password } : null;
  }

  #newRecord(username: string, displayName: string, roles: Role[], passwordHash: string, createdBy: string): OperatorRecord {
    return { username, displayName, roles, passwordHash, mustChangePassword: true, status: 'active', createdAt: this.#clock.now().toISOString(), createdBy, failedLogins: 0 };
  }

  /** Creates an operator with a one-time password (returned once; to be changed at first use). */
  async createOperator(actor: Principal, input: { username: string; displayName?: string; roles: string[] }, requestId?: string): Promise<{ operator: OperatorView; password: string }> {
    const username = input.username;
    if (!USERNAME.test(username)) throw new YinxinError('validation-failed', `user name '${username}' must be 2-64 characters: lower-case letters, digits, '.', '_' or '-', starting with a letter`, { field: 'username' });
    const roles = validateRoles(input.roles);
    const password = generateInitialPassword();
    const passwordHash = await hashPassword(password, this.#argon2);
    const record = this.#newRecord(username, input.displayName ?? username, roles, passwordHash, actor.username);
    await this.#store.transaction((tx) => {
      if (tx.get(this.#operators, username)) throw new YinxinError('conflict', `operator '${username}' already exists`);
      tx.put(this.#operators, username, record);
      this.#audit.append(tx, { actor: actorName(actor), action: 'operator.create', object: `operator:${username}`, outcome: 'success', requestId, details: { roles } });
    });
    return { operator: view(record), password };
  }

  async updateOperator(actor: Principal, username: string, change: { roles?: string[]; status?: 'active' | 'disabled'; displayName?: string }, requestId?: string): Promise<OperatorView> {
    const roles = change.roles === undefined ? undefined : validateRoles(change.roles);
    if (username === actor.username && (change.status === 'disabled' || (roles && !roles.includes('ca-admin') && actor.roles.includes('ca-admin')))) {
      throw new YinxinError('conflict', 'you cannot disable yourself or remove your own administrator role; ask another administrator');
    }
    return this.#store.transaction((tx) => {
      const current = tx.get(this.#operators, username);
      if (!current) throw new YinxinError('not-found', `no operator '${username}'`);
      const next: OperatorRecord = { ...current, ...(roles ? { roles } : {}), ...(change.status ? { status: change.status } : {}), ...(change.displayName ? { displayName: change.displayName } : {}) };
      tx.put(this.#operators, username, next);
      if (change.status === 'disabled') this.#removeTokens(tx, username);
      this.#audit.append(tx, { actor: actorName(actor), action: 'operator.update', object: `operator:${username}`, outcome: 'success', requestId, details: { roles: next.roles, status: next.status } });
      return view(next);
    });
  }

  /** Issues a new one-time password for an operator who forgot theirs; all their sessions end. */
  async resetPassword(actor: Principal, username: string, requestId?: string): Promise<{ password: string }> {
    const password = generateInitialPassword();
    const passwordHash = await hashPassword(password, this.#argon2);
    await this.#store.transaction((tx) => {
      const current = tx.get(this.#operators, username);
      if (!current) throw new YinxinError('not-found', `no operator '${username}'`);
      tx.put(this.#operators, username, { ...current, passwordHash, mustChangePassword: true, failedLogins: 0, lockedUntil: undefined });
      this.#removeTokens(tx, username);
      this.#audit.append(tx, { actor: actorName(actor), action: 'operator.reset-password', object: `operator:${username}`, outcome: 'success', requestId });
    });
    return { password };
  }

  getOperator(username: string): OperatorView | undefined {
    const r = this.#operators.get(username);
    return r && view(r);
  }

  listOperators(): OperatorView[] {
    return [...this.#operators.range()].map((e) => view(e.value));
  }

  /**
   * Password sign-in. The same error and (through a dummy hash) the same time for an unknown user,
   * a wrong password and a disabled account, so nobody can probe which user names exist.
   * Locked accounts are refused without checking the password; the lock doubles per failure past
   * the threshold and is capped, so an attacker slows down without locking a victim out for long.
   */
  async login(username: string, password: string, requestId?: string): Promise<{ token: string; expiresAt: string; principal: Principal }> {
    const record = this.#operators.get(username);
    const now = this.#clock.now();
    const locked = record?.lockedUntil !== undefined && new Date(record.lockedUntil) > now;
    const ok = await verifyPassword(password, record && !locked ? record.passwordHash : DUMMY_HASH);
    if (!record || !ok || locked || record.status !== 'active') {
      await this.#store.transaction((tx) => {
        const current = tx.get(this.#operators, username);
        let details: Record<string, unknown> = { reason: !current ? 'unknown-user' : locked ? 'locked' : current.status !== 'active' ? 'disabled' : 'wrong-password' };
        if (current && !locked && current.status === 'active') {
          const failedLogins = current.failedLogins + 1;
          const over = failedLogins - this.#lockout.threshold;
          const lockedUntil = over >= 0 ? new Date(now.getTime() + Math.min(this.#lockout.maxSeconds, this.#lockout.baseSeconds * 2 ** over) * 1000).toISOString() : undefined;
          tx.put(this.#operators, username, { ...current, failedLogins, lockedUntil });
          details = { ...details, failedLogins, lockedUntil };
        }
        this.#audit.append(tx, { actor: `operator:${username.slice(0, 64)}`, action: 'operator.login', object: `operator:${username.slice(0, 64)}`, outcome: 'failure', requestId, details });
      });
      throw new YinxinError('invalid-credentials', 'wrong user name or password, or the account is locked or disabled');
    }
    const { token, record: tokenRecord } = this.#newToken('session', username, now, this.#ttl);
    await this.#store.transaction((tx) => {
      const current = tx.get(this.#operators, username);
      if (current && (current.failedLogins || current.lockedUntil)) tx.put(this.#operators, username, { ...current, failedLogins: 0, lockedUntil: undefined });
      tx.put(this.#tokens, tokenRecord.id, tokenRecord);
      this.#audit.append(tx, { actor: `operator:${username}`, action: 'operator.login', object: `operator:${username}`, outcome: 'success', requestId, details: { session: tokenRecord.id } });
    });
    return { token, expiresAt: tokenRecord.expiresAt, principal: principalOf(record, tokenRecord) };
  }

  async logout(principal: Principal, requestId?: string): Promise<void> {
    await this.#store.transaction((tx) => {
      tx.remove(this.#tokens, principal.tokenId);
      this.#audit.append(tx, { actor: actorName(principal), action: 'operator.logout', object: `operator:${principal.username}`, outcome: 'success', requestId });
    });
  }

  async changePassword(principal: Principal, currentPassword: string, newPassword: string, requestId?: string): Promise<void> {
    const record = this.#operators.get(principal.username);
    if (!record || !(await verifyPassword(currentPassword, record.passwordHash))) {
      throw new YinxinError('invalid-credentials', 'the current password is wrong');
    }
    checkPasswordPolicy(newPassword, this.#policy, principal.username);
    if (await verifyPassword(newPassword, record.passwordHash)) throw new YinxinError('validation-failed', 'the new password must differ from the current one', { field: 'newPassword' });
    const passwordHash = await hashPassword(newPassword, this.#argon2);
    await this.#store.transaction((tx) => {
      const current = tx.get(this.#operators, principal.username);
      if (!current) throw new YinxinError('not-found', 'operator vanished');
      tx.put(this.#operators, principal.username, { ...current, passwordHash, mustChangePassword: false });
      // Other sessions end; the one that changed the password stays.
      this.#removeTokens(tx, principal.username, principal.tokenId);
      this.#audit.append(tx, { actor: actorName(principal), action: 'operator.change-password', object: `operator:${principal.username}`, outcome: 'success', requestId });
    });
  }

  /** An API token for scripts carrying some or all of the owner's roles. Shown once. */
  async createApiToken(principal: Principal, input: { name: string; roles?: string[]; expiresInDays?: number }, requestId?: string): Promise<{ token: string; id: string; expiresAt: string; roles: Role[] }> {
    if (principal.mustChangePassword) throw new YinxinError('password-change-required', 'change your one-time password first');
    const roles = input.roles === undefined ? principal.roles : validateRoles(input.roles);
    const extra = roles.filter((r) => !principal.roles.includes(r));
    if (extra.length) throw new YinxinError('forbidden', `a token cannot carry roles its owner lacks: ${extra.join(', ')}`);
    const days = input.expiresInDays ?? 90;
    if (!Number.isInteger(days) || days < 1 || days > 730) throw new YinxinError('validation-failed', 'expiresInDays must be 1-730', { field: 'expiresInDays' });
    const { token, record } = this.#newToken('api', principal.username, this.#clock.now(), days * 86400, { roles, name: input.name });
    await this.#store.transaction((tx) => {
      tx.put(this.#tokens, record.id, record);
      this.#audit.append(tx, { actor: actorName(principal), action: 'token.create', object: `token:${record.id}`, outcome: 'success', requestId, details: { name: input.name, roles } });
    });
    return { token, id: record.id, expiresAt: record.expiresAt, roles };
  }

  listApiTokens(username: string): Array<Omit<TokenRecord, 'secretHash'>> {
    return [...this.#tokens.range()].filter((e) => e.value.kind === 'api' && e.value.username === username)
      .map(({ value: { secretHash: _s, ...rest } }) => rest);
  }

  async revokeApiToken(principal: Principal, id: string, requestId?: string): Promise<void> {
    await this.#store.transaction((tx) => {
      const t = tx.get(this.#tokens, id);
      const admin = principal.roles.includes('ca-admin');
      if (!t || t.kind !== 'api' || (t.username !== principal.username && !admin)) throw new YinxinError('not-found', `no API token '${id}'`);
      tx.remove(this.#tokens, id);
      this.#audit.append(tx, { actor: actorName(principal), action: 'token.revoke', object: `token:${id}`, outcome: 'success', requestId });
    });
  }

  /** Resolves a bearer token to a principal, or throws 'unauthenticated'. Hot path: reads only. */
  authenticate(bearer: string): Principal {
    const m = /^yx_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/.exec(bearer);
    const fail = () => new YinxinError('unauthenticated', 'the token is unknown, expired or revoked; sign in again');
    if (!m) throw fail();
    const t = this.#tokens.get(m[1]);
    if (!t) throw fail();
    const given = createHash('sha256').update(m[2]).digest();
    if (!timingSafeEqual(given, Buffer.from(t.secretHash, 'hex'))) throw fail();
    if (new Date(t.expiresAt) <= this.#clock.now()) throw fail();
    const owner = this.#operators.get(t.username);
    if (!owner || owner.status !== 'active') throw fail();
    return principalOf(owner, t);
  }

  #newToken(kind: TokenRecord['kind'], username: string, now: Date, ttlSeconds: number, extra: Partial<TokenRecord> = {}) {
    const id = randomBytes(8).toString('hex');
    const secret = randomBytes(32).toString('base64url');
    const record: TokenRecord = {
      id, kind, username, secretHash: createHash('sha256').update(secret).digest('hex'),
      createdAt: now.toISOString(), expiresAt: new Date(now.getTime() + ttlSeconds * 1000).toISOString(), ...extra,
    };
    return { token: `yx_${id}_${secret}`, record };
  }

  #removeTokens(tx: Parameters<Parameters<Store['transaction']>[0]>[0], username: string, keep?: string): void {
    for (const { key, value } of this.#tokens.range()) {
      if (value.username === username && value.kind === 'session' && key !== keep) tx.remove(this.#tokens, key);
    }
  }
}

function principalOf(owner: OperatorRecord, t: TokenRecord): Principal {
  // An API token keeps only those of its roles the owner still has.
  const roles = t.kind === 'api' ? (t.roles ?? []).filter((r) => owner.roles.includes(r)) : owner.roles;
  return { kind: t.kind === 'api' ? 'api-token' : 'operator', username: owner.username, roles, tokenId: t.id, mustChangePassword: t.kind === 'session' && owner.mustChangePassword };
}

function validateRoles(roles: unknown): Role[] {
  if (!Array.isArray(roles) || roles.length === 0) throw new YinxinError('validation-failed', 'roles must be a non-empty list', { field: 'roles' });
  const bad = roles.filter((r) => !isRole(r));
  if (bad.length) throw new YinxinError('validation-failed', `unknown role(s): ${bad.join(', ')}`, { field: 'roles' });
  return [...new Set(roles as Role[])];
}

export function actorName(p: Principal): string {
  return p.kind === 'api-token' ? `token:${p.tokenId}(${p.username})` : `operator:${p.username}`;
}

function view(r: OperatorRecord): OperatorView {
  const { passwordHash: _p, ...rest } = r;
  return rest;
}
