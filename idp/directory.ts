/**
 * The directory of single sign-on: civil servants (users), the department tree, applications
 * (OIDC clients and CAS services), the permissions each application declares, roles bundling an
 * application's permissions, and role assignments to users or departments, optionally scoped to
 * a department subtree. Core only (no HTTP): every change is one store transaction with its
 * audit record.
 *
 * Storage layout (explicit index tables, so listing a department's children or a user's
 * assignments is one range read, never a scan or N+1):
 *   idp.users                 id -> UserRecord
 *   idp.users.login           login name or identity code -> user id
 *   idp.users.department      [departmentId, userId] -> 1
 *   idp.departments           id -> DepartmentRecord (with `path`, the ids from the root down to itself)
 *   idp.departments.children  [parentId | '', name, id] -> id
 *   idp.applications          clientId -> ApplicationRecord
 *   idp.permissions           [clientId, name] -> PermissionRecord
 *   idp.roles                 id -> RoleRecord
 *   idp.assignments           id -> AssignmentRecord
 *   idp.assignments.subject   ['user' | 'department', subjectId, assignmentId] -> 1
 *   idp.totp.steps            userId -> the last RFC 6238 time step accepted (replay refusal)
 *   idp.migrations            name -> ISO date the one-time migration ran
 *
 * Client secrets and TOTP seeds are stored sealed under an HSM key (secret-box.ts); records
 * written before that are sealed by migrateSecrets() when the IdP opens.
 */
import { createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { AuditLog } from '../audit/types.ts';
import { checkPasswordPolicy, DEFAULT_ARGON2, DEFAULT_PASSWORD_POLICY, DUMMY_HASH, hashPassword, verifyPassword, type Argon2Params, type PasswordPolicy } from '../auth/passwords.ts';
import { normalizeCitizenId } from '../ca/identifiers.ts';
import type { Clock } from '../common/clock.ts';
import { YinxinError } from '../common/errors.ts';
import type { Key, Store, Table, Tx } from '../store/store.ts';
import type { SealedSecret, SecretBox } from './secret-box.ts';

export type UserStatus = 'active' | 'suspended' | 'left';

export interface UserRecord {
  /** Stable subject identifier (`sub`), never reused. */
  id: string;
  /** Citizen ID (GB 11643), normalized; unique. */
  identityCode: string;
  /** Optional login name (unique); users may also sign in with their identity code. */
  username?: string;
  name: string;
  departmentId: string | null;
  position: string;
  status: UserStatus;
  passwordHash?: string;
  /** The base32 RFC 6238 seed, sealed (secret-box.ts), when the user has a second factor. */
  totpSecret?: SealedSecret;
  createdAt: string;
  updatedAt: string;
  failedLogins: number;
  /** Sign-in attempts are refused until then (short, capped: slows guessing, never a long lockout). */
  throttledUntil?: string;
}

export type UserView = Omit<UserRecord, 'passwordHash' | 'totpSecret'> & { hasPassword: boolean; hasTotp: boolean };

export interface DepartmentRecord {
  id: string;
  name: string;
  parentId: string | null;
  /** Ids from the root down to this department (inclusive): subtree checks without walking. */
  path: string[];
  createdAt: string;
}

export type GrantType = 'authorization_code' | 'refresh_token' | 'client_credentials';

export interface ApplicationRecord {
  clientId: string;
  name: string;
  /**
   * Kept (sealed, secret-box.ts) because oidc-provider compares it for client_secret_basic/post;
   * never shown after creation. Open it with Directory.clientSecretOf().
   */
  clientSecret: SealedSecret;
  redirectUris: string[];
  postLogoutRedirectUris: string[];
  backchannelLogoutUri?: string;
  grantTypes: GrantType[];
  /** The API this application exposes (resource indicator, RFC 8707): access tokens for it are JWTs. */
  resource?: string;
  /** May this application see users' identity codes (citizen IDs)? */
  identityCodeAllowed: boolean;
  /** Users must give a TOTP code when signing in to this application. */
  requireTotp: boolean;
  /** CAS 3.0 service URL prefixes this application answers on (legacy portals). */
  casServices: string[];
  /** CAS single logout: POSTed a SAML LogoutRequest when the session ends. */
  casLogoutUrl?: string;
  status: 'active' | 'disabled';
  createdAt: string;
}

export type ApplicationView = Omit<ApplicationRecord, 'clientSecret'>;

export interface PermissionRecord {
  clientId: string;
  name: string;
  description: string;
}

export interface RoleRecord {
  id: string;
  name: string;
  /** The application whose permissions this role bundles. */
  clientId: string;
  permissions: string[];
  description: string;
}

export interface AssignmentRecord {
  id: string;
  roleId: string;
  subject: { kind: 'user' | 'department'; id: string };
  /** When set, the role's permissions apply only to objects of this department and its subtree. */
  scopeDepartmentId?: string;
  createdAt: string;
  createdBy: string;
}

export interface Page<T> {
  items: T[];
  /** Pass as `after` for the next page; absent on the last page. */
  next?: string;
}

export interface Authorization {
  roles: string[];
  permissions: string[];
  /** Permissions granted only inside department subtrees: permission -> department ids. */
  scoped: Record<string, string[]>;
}

export interface LockoutPolicy {
  /** Failures allowed before throttling starts. */
  threshold: number;
  /** First throttle length; doubles with each further failure, capped at maxSeconds. */
  baseSeconds: number;
  /** The cap: the longest a victim can be kept out by someone guessing. */
  maxSeconds: number;
}

export interface DirectoryOptions {
  store: Store;
  /** Seals client secrets and TOTP seeds under the HSM. */
  secrets: SecretBox;
  audit: AuditLog;
  clock: Clock;
  argon2?: Argon2Params;
  passwordPolicy?: PasswordPolicy;
  lockout?: LockoutPolicy;
}

export interface Actor {
  /** For the audit trail: 'operator:alice', 'user:<sub>', 'system'. */
  name: string;
  requestId?: string;
}

const LOGIN_NAME = /^[a-z][a-z0-9._-]{1,63}$/;
const PERMISSION_NAME = /^[A-Za-z0-9][A-Za-z0-9:._-]{0,127}$/;
const CLIENT_ID = /^[a-z0-9][a-z0-9._-]{1,63}$/;
const GRANT_TYPES: readonly GrantType[] = ['authorization_code', 'refresh_token', 'client_credentials'];
const MAX_PAGE = 500;

export class Directory {
  readonly #store: Store;
  readonly #secrets: SecretBox;
  readonly #audit: AuditLog;
  readonly #clock: Clock;
  readonly #argon2: Argon2Params;
  readonly #policy: PasswordPolicy;
  readonly lockout: LockoutPolicy;
  readonly #users: Table<UserRecord>;
  readonly #logins: Table<string>;
  readonly #usersByDepartment: Table<number>;
  readonly #departments: Table<DepartmentRecord>;
  readonly #children: Table<string>;
  readonly #applications: Table<ApplicationRecord>;
  readonly #permissions: Table<PermissionRecord>;
  readonly #roles: Table<RoleRecord>;
  readonly #assignments: Table<AssignmentRecord>;
  readonly #assignmentsBySubject: Table<number>;
  readonly #totpSteps: Table<number>;
  readonly #migrations: Table<string>;

  constructor(o: DirectoryOptions) {
    this.#store = o.store;
    this.#secrets = o.secrets;
    this.#audit = o.audit;
    this.#clock = o.clock;
    this.#argon2 = o.argon2 ?? DEFAULT_ARGON2;
    this.#policy = o.passwordPolicy ?? DEFAULT_PASSWORD_POLICY;
    this.lockout = o.lockout ?? { threshold: 5, baseSeconds: 1, maxSeconds: 60 };
    this.#users = o.store.table('idp.users');
    this.#logins = o.store.table('idp.users.login');
    this.#usersByDepartment = o.store.table('idp.users.department');
    this.#departments = o.store.table('idp.departments');
    this.#children = o.store.table('idp.departments.children');
    this.#applications = o.store.table('idp.applications');
    this.#permissions = o.store.table('idp.permissions');
    this.#roles = o.store.table('idp.roles');
    this.#assignments = o.store.table('idp.assignments');
    this.#assignmentsBySubject = o.store.table('idp.assignments.subject');
    this.#totpSteps = o.store.table('idp.totp.steps');
    this.#migrations = o.store.table('idp.migrations');
  }

  #now(): string {
    return this.#clock.now().toISOString();
  }

  // ---------------------------------------------------------------- departments

  async createDepartment(actor: Actor, input: { name: string; parentId?: string | null }): Promise<DepartmentRecord> {
    const name = requireText(input.name, 'name', 200);
    const id: string = randomUUID();
    return this.#store.transaction((tx) => {
      let path: string[] = [id];
      const parentId = input.parentId ?? null;
      if (parentId) {
        const parent = tx.get(this.#departments, parentId);
        if (!parent) throw new YinxinError('not-found', `no department '${parentId}'`, { field: 'parentId' });
        path = [...parent.path, id];
      }
      const record: DepartmentRecord = { id, name, parentId, path, createdAt: this.#now() };
      tx.put(this.#departments, id, record);
      tx.put(this.#children, [parentId ?? '', name, id], id);
      this.#log(tx, actor, 'idp.department.create', `department:${id}`, { name, parentId });
      return record;
    });
  }

  getDepartment(id: string): DepartmentRecord | undefined {
    return this.#departments.get(id);
  }

  /** The children of a department (roots when parentId is null), by name, paged. */
  listDepartments(parentId: string | null, o: { after?: string; limit?: number } = {}): Page<DepartmentRecord> {
    const limit = pageLimit(o.limit);
    const prefix = parentId ?? '';
    const start: Key = o.after ? [prefix, ...splitCursor(o.after)] : [prefix];
    const items: DepartmentRecord[] = [];
    let next: string | undefined;
    for (const { key, value } of this.#children.range({ start, end: [prefix, '\uffff'] })) {
      const k = key as string[];
      if (o.after && k[1] === splitCursor(o.after)[0] && k[2] === splitCursor(o.after)[1]) continue;
      if (items.length === limit) {
        next = cursorOf(items[items.length - 1].name, items[items.length - 1].id);
        break;
      }
      const d = this.#departments.get(value);
      if (d) items.push(d);
    }
    return next ? { items, next } : { items };
  }

  async renameDepartment(actor: Actor, id: string, name: string): Promise<DepartmentRecord> {
    const newName = requireText(name, 'name', 200);
    return this.#store.transaction((tx) => {
      const d = tx.get(this.#departments, id);
      if (!d) throw new YinxinError('not-found', `no department '${id}'`);
      tx.remove(this.#children, [d.parentId ?? '', d.name, id]);
      const next = { ...d, name: newName };
      tx.put(this.#departments, id, next);
      tx.put(this.#children, [d.parentId ?? '', newName, id], id);
      this.#log(tx, actor, 'idp.department.rename', `department:${id}`, { name: newName });
      return next;
    });
  }

  /** Only an empty department (no sub-departments, no members, no assignments) can be deleted. */
  async deleteDepartment(actor: Actor, id: string): Promise<void> {
    await this.#store.transaction((tx) => {
      const d = tx.get(this.#departments, id);
      if (!d) throw new YinxinError('not-found', `no department '${id}'`);
      if (this.#children.count({ start: [id], end: [id, '\uffff'], limit: 1 }) > 0) throw new YinxinError('conflict', 'the department has sub-departments');
      if (this.#usersByDepartment.count({ start: [id], end: [id, '\uffff'], limit: 1 }) > 0) throw new YinxinError('conflict', 'the department has members');
      if (this.#assignmentsBySubject.count({ start: ['department', id], end: ['department', id, '\uffff'], limit: 1 }) > 0) throw new YinxinError('conflict', 'roles are assigned to the department');
      tx.remove(this.#departments, id);
      tx.remove(this.#children, [d.parentId ?? '', d.name, id]);
      this.#log(tx, actor, 'idp.department.delete', `department:${id}`, { name: d.name });
    });
  }

  // ---------------------------------------------------------------- users

  async createUser(actor: Actor, input: { identityCode: string; name: string; username?: string; departmentId?: string | null; position?: string; password?: string }): Promise<UserView> {
    const identityCode = normalizeCitizenId(input.identityCode, { now: this.#clock.now() });
    const name = requireText(input.name, 'name', 200);
    if (input.username !== undefined && !LOGIN_NAME.test(input.username)) {
      throw new YinxinError('validation-failed', 'username must be 2-64 characters: lower-case letters, digits, ".", "_" or "-", starting with a letter', { field: 'username' });
    }
    if (input.password !== undefined) checkPasswordPolicy(input.password, this.#policy, input.username);
    const passwordHash = input.password === undefined ? undefined : await hashPassword(input.password, this.#argon2);
    const id = randomUUID();
    const now = this.#now();
    const record: UserRecord = {
      id, identityCode, name, departmentId: input.departmentId ?? null, position: input.position ?? '', status: 'active',
      createdAt: now, updatedAt: now, failedLogins: 0,
      ...(input.username ? { username: input.username } : {}), ...(passwordHash ? { passwordHash } : {}),
    };
    return this.#store.transaction((tx) => {
      if (tx.get(this.#logins, identityCode) !== undefined) throw new YinxinError('conflict', 'a user with this identity code exists', { field: 'identityCode' });
      if (record.username && tx.get(this.#logins, record.username) !== undefined) throw new YinxinError('conflict', `username '${record.username}' is taken`, { field: 'username' });
      if (record.departmentId && !tx.get(this.#departments, record.departmentId)) throw new YinxinError('not-found', `no department '${record.departmentId}'`, { field: 'departmentId' });
      tx.put(this.#users, id, record);
      tx.put(this.#logins, identityCode, id);
      if (record.username) tx.put(this.#logins, record.username, id);
      if (record.departmentId) tx.put(this.#usersByDepartment, [record.departmentId, id], 1);
      this.#log(tx, actor, 'idp.user.create', `user:${id}`, { departmentId: record.departmentId });
      return userView(record);
    });
  }

  getUser(id: string): UserRecord | undefined {
    return this.#users.get(id);
  }

  userView(id: string): UserView | undefined {
    const u = this.#users.get(id);
    return u ? userView(u) : undefined;
  }

  findUserByLogin(login: string): UserRecord | undefined {
    const id = this.#logins.get(loginKey(login));
    return id === undefined ? undefined : this.#users.get(id);
  }

  findUserByIdentityCode(code: string): UserRecord | undefined {
    const id = this.#logins.get(code.trim().toUpperCase());
    return id === undefined ? undefined : this.#users.get(id);
  }

  /** Users of a department (all users when departmentId is omitted), paged by id. */
  listUsers(o: { departmentId?: string; after?: string; limit?: number } = {}): Page<UserView> {
    const limit = pageLimit(o.limit);
    const items: UserView[] = [];
    let next: string | undefined;
    const push = (u: UserRecord | undefined) => {
      if (!u) return true;
      if (items.length === limit) {
        next = items[items.length - 1].id;
        return false;
      }
      items.push(userView(u));
      return true;
    };
    if (o.departmentId) {
      for (const { key } of this.#usersByDepartment.range({ start: [o.departmentId, o.after ?? ''], end: [o.departmentId, '\uffff'] })) {
        const id = (key as string[])[1];
        if (id === o.after) continue;
        if (!push(this.#users.get(id))) break;
      }
    } else {
      for (const { key, value } of this.#users.range({ start: o.after ?? '' })) {
        if (key === o.after) continue;
        if (!push(value)) break;
      }
    }
    return next ? { items, next } : { items };
  }

  /**
   * `alsoInTransaction` writes what follows from the change in the same transaction (sessions.ts
   * ends the sessions of a user no longer active); the facts it returns join the audit record.
   */
  async updateUser(actor: Actor, id: string, change: { name?: string; departmentId?: string | null; position?: string; status?: UserStatus },
    alsoInTransaction?: (tx: Tx, user: UserRecord) => Record<string, unknown> | undefined): Promise<UserView> {
    if (change.status !== undefined && !['active', 'suspended', 'left'].includes(change.status)) throw new YinxinError('validation-failed', 'status must be active, suspended or left', { field: 'status' });
    return this.#store.transaction((tx) => {
      const u = tx.get(this.#users, id);
      if (!u) throw new YinxinError('not-found', `no user '${id}'`);
      const next: UserRecord = { ...u, updatedAt: this.#now() };
      if (change.name !== undefined) next.name = requireText(change.name, 'name', 200);
      if (change.position !== undefined) next.position = change.position;
      if (change.status !== undefined) next.status = change.status;
      if (change.departmentId !== undefined && change.departmentId !== u.departmentId) {
        if (change.departmentId && !tx.get(this.#departments, change.departmentId)) throw new YinxinError('not-found', `no department '${change.departmentId}'`, { field: 'departmentId' });
        if (u.departmentId) tx.remove(this.#usersByDepartment, [u.departmentId, id]);
        if (change.departmentId) tx.put(this.#usersByDepartment, [change.departmentId, id], 1);
        next.departmentId = change.departmentId;
      }
      tx.put(this.#users, id, next);
      const more = alsoInTransaction?.(tx, next);
      this.#log(tx, actor, 'idp.user.update', `user:${id}`, { status: next.status, departmentId: next.departmentId, ...more });
      return userView(next);
    });
  }

  async setPassword(actor: Actor, id: string, password: string): Promise<void> {
    const u = this.#users.get(id);
    if (!u) throw new YinxinError('not-found', `no user '${id}'`);
    checkPasswordPolicy(password, this.#policy, u.username);
    const passwordHash = await hashPassword(password, this.#argon2);
    await this.#store.transaction((tx) => {
      const cur = tx.get(this.#users, id);
      if (!cur) throw new YinxinError('not-found', `no user '${id}'`);
      tx.put(this.#users, id, { ...cur, passwordHash, failedLogins: 0, throttledUntil: undefined, updatedAt: this.#now() });
      this.#log(tx, actor, 'idp.user.password', `user:${id}`);
    });
  }

  /** Enrolls a TOTP second factor (RFC 6238, SHA-1, 6 digits, 30 s); returns the secret and an otpauth URI once. */
  async enrollTotp(actor: Actor, id: string, issuer = 'yinxin'): Promise<{ secret: string; uri: string }> {
    const secret = base32(randomBytes(20));
    const sealed = await this.#secrets.seal('totp', id, secret);
    const u = await this.#store.transaction((tx) => {
      const cur = tx.get(this.#users, id);
      if (!cur) throw new YinxinError('not-found', `no user '${id}'`);
      tx.put(this.#users, id, { ...cur, totpSecret: sealed, updatedAt: this.#now() });
      this.#log(tx, actor, 'idp.user.totp-enroll', `user:${id}`);
      return cur;
    });
    const label = encodeURIComponent(`${issuer}:${u.username ?? u.identityCode}`);
    return { secret, uri: `otpauth://totp/${label}?secret=${secret}&issuer=${encodeURIComponent(issuer)}&algorithm=SHA1&digits=6&period=30` };
  }

  async removeTotp(actor: Actor, id: string): Promise<void> {
    await this.#store.transaction((tx) => {
      const cur = tx.get(this.#users, id);
      if (!cur) throw new YinxinError('not-found', `no user '${id}'`);
      tx.put(this.#users, id, { ...cur, totpSecret: undefined, updatedAt: this.#now() });
      this.#log(tx, actor, 'idp.user.totp-remove', `user:${id}`);
    });
  }

  /**
   * Checks a TOTP code and spends it: RFC 6238 s5.2 accepts one step of clock drift either way, and
   * "the verifier MUST NOT accept the second attempt of the OTP after the successful validation",
   * so the accepted time step is recorded (idp.totp.steps, shared by every process on the store,
   * kept across restarts) and a code for that step or an earlier one is refused afterwards.
   */
  async spendTotp(user: UserRecord, code: string): Promise<boolean> {
    const seed = await this.totpSeedOf(user);
    if (seed === undefined) return false;
    return this.#store.transaction((tx) => this.spendTotpIn(tx, user, seed, code));
  }

  /** The user's TOTP seed opened from its seal (an HSM decryption), for spendTotpIn; undefined without a second factor. */
  async totpSeedOf(user: UserRecord): Promise<string | undefined> {
    return user.totpSecret ? this.#secrets.open('totp', user.id, user.totpSecret) : undefined;
  }

  /** spendTotp inside the caller's transaction (with an attempt counter and an audit record, say), given the opened seed. */
  spendTotpIn(tx: Tx, user: UserRecord, seed: string, code: string): boolean {
    if (typeof code !== 'string' || !/^\d{6}$/.test(code)) return false;
    const now = Math.floor(this.#clock.now().getTime() / 30_000);
    let matched: number | undefined;
    for (const step of [now - 1, now, now + 1]) {
      if (timingSafeEqual(Buffer.from(totp(seed, step)), Buffer.from(code))) matched = step;
    }
    if (matched === undefined) return false;
    const last = tx.get(this.#totpSteps, user.id);
    if (last !== undefined && matched <= last) return false;
    tx.put(this.#totpSteps, user.id, matched);
    return true;
  }

  /**
   * Password sign-in. Every refusal is the same 'invalid-credentials' error, and an unknown login
   * costs one Argon2 verification like a known one (no enumeration by message or timing).
   * Repeated failures throttle the account for a short, capped time (LockoutPolicy) and are audited.
   */
  async authenticate(login: string, password: string, ctx: { requestId?: string; clientId?: string } = {}): Promise<UserRecord> {
    const user = typeof login === 'string' && login.length <= 128 ? this.findUserByLogin(login) : undefined;
    const now = this.#clock.now();
    const throttled = user?.throttledUntil !== undefined && new Date(user.throttledUntil) > now;
    const ok = await verifyPassword(String(password).slice(0, 1024), user?.passwordHash ?? DUMMY_HASH);
    const refuse = async (reason: string): Promise<never> => {
      await this.#store.transaction((tx) => {
        if (user && reason === 'wrong-password') {
          const cur = tx.get(this.#users, user.id);
          if (cur) {
            const failedLogins = cur.failedLogins + 1;
            const over = failedLogins - this.lockout.threshold;
            const throttledUntil = over >= 0 ? new Date(now.getTime() + Math.min(this.lockout.maxSeconds, this.lockout.baseSeconds * 2 ** over) * 1000).toISOString() : cur.throttledUntil;
            tx.put(this.#users, user.id, { ...cur, failedLogins, throttledUntil });
          }
        }
        this.#audit.append(tx, { actor: user ? `user:${user.id}` : 'anonymous', action: 'idp.login', object: user ? `user:${user.id}` : 'user:unknown', outcome: 'failure', requestId: ctx.requestId, details: { reason, method: 'password', ...(ctx.clientId ? { clientId: ctx.clientId } : {}) } });
      });
      throw new YinxinError('invalid-credentials', 'wrong user name or password');
    };
    if (!user) return refuse('unknown-user');
    if (throttled) return refuse('throttled');
    if (!ok) return refuse('wrong-password');
    if (user.status !== 'active') return refuse(`status-${user.status}`);
    if (user.failedLogins > 0) {
      await this.#store.transaction((tx) => {
        const cur = tx.get(this.#users, user.id);
        if (cur) tx.put(this.#users, user.id, { ...cur, failedLogins: 0, throttledUntil: undefined });
      });
    }
    return user;
  }

  /** Records a successful sign-in (any method) in the audit trail. */
  async recordLogin(user: UserRecord, details: { method: string; clientId?: string; requestId?: string }): Promise<void> {
    await this.#store.transaction((tx) => {
      this.#audit.append(tx, { actor: `user:${user.id}`, action: 'idp.login', object: `user:${user.id}`, outcome: 'success', requestId: details.requestId, details: { method: details.method, ...(details.clientId ? { clientId: details.clientId } : {}) } });
    });
  }

  async auditEvent(input: { actor: string; action: string; object: string; outcome: 'success' | 'failure'; requestId?: string; details?: Record<string, unknown> }): Promise<void> {
    await this.#store.transaction((tx) => { this.#audit.append(tx, input); });
  }

  // ---------------------------------------------------------------- applications

  async createApplication(actor: Actor, input: {
    clientId: string; name: string; redirectUris?: string[]; postLogoutRedirectUris?: string[]; backchannelLogoutUri?: string;
    grantTypes?: GrantType[]; resource?: string; identityCodeAllowed?: boolean; requireTotp?: boolean; casServices?: string[]; casLogoutUrl?: string;
  }): Promise<{ application: ApplicationView; clientSecret: string }> {
    if (!CLIENT_ID.test(input.clientId)) throw new YinxinError('validation-failed', 'clientId must be 2-64 characters: lower-case letters, digits, ".", "_" or "-"', { field: 'clientId' });
    const grantTypes = input.grantTypes ?? ['authorization_code', 'refresh_token'];
    for (const g of grantTypes) if (!GRANT_TYPES.includes(g)) throw new YinxinError('validation-failed', `unknown grant type '${g}'`, { field: 'grantTypes' });
    const urls = (list: string[] | undefined, field: string) => (list ?? []).map((u) => requireUrl(u, field));
    const clientSecret = randomBytes(32).toString('base64url');
    const record: ApplicationRecord = {
      clientId: input.clientId, name: requireText(input.name, 'name', 200), clientSecret: await this.#secrets.seal('client-secret', input.clientId, clientSecret),
      redirectUris: urls(input.redirectUris, 'redirectUris'), postLogoutRedirectUris: urls(input.postLogoutRedirectUris, 'postLogoutRedirectUris'),
      ...(input.backchannelLogoutUri ? { backchannelLogoutUri: requireUrl(input.backchannelLogoutUri, 'backchannelLogoutUri') } : {}),
      grantTypes: [...new Set(grantTypes)],
      ...(input.resource ? { resource: requireUrl(input.resource, 'resource') } : {}),
      identityCodeAllowed: input.identityCodeAllowed ?? false, requireTotp: input.requireTotp ?? false,
      casServices: urls(input.casServices, 'casServices'),
      ...(input.casLogoutUrl ? { casLogoutUrl: requireUrl(input.casLogoutUrl, 'casLogoutUrl') } : {}),
      status: 'active', createdAt: this.#now(),
    };
    if (record.grantTypes.includes('authorization_code') && record.redirectUris.length === 0 && record.casServices.length === 0) {
      throw new YinxinError('validation-failed', 'an application using authorization_code needs at least one redirect URI', { field: 'redirectUris' });
    }
    await this.#store.transaction((tx) => {
      if (tx.get(this.#applications, record.clientId)) throw new YinxinError('conflict', `application '${record.clientId}' exists`);
      if (record.resource) {
        for (const { value } of this.#applications.range()) if (value.resource === record.resource) throw new YinxinError('conflict', `resource '${record.resource}' belongs to '${value.clientId}'`, { field: 'resource' });
      }
      tx.put(this.#applications, record.clientId, record);
      this.#log(tx, actor, 'idp.application.create', `application:${record.clientId}`, { grantTypes: record.grantTypes });
    });
    return { application: applicationView(record), clientSecret };
  }

  getApplication(clientId: string): ApplicationRecord | undefined {
    return this.#applications.get(clientId);
  }

  listApplications(o: { after?: string; limit?: number } = {}): Page<ApplicationView> {
    const limit = pageLimit(o.limit);
    const items: ApplicationView[] = [];
    for (const { key, value } of this.#applications.range({ start: o.after ?? '' })) {
      if (key === o.after) continue;
      if (items.length === limit) return { items, next: items[items.length - 1].clientId };
      items.push(applicationView(value));
    }
    return { items };
  }

  applicationForResource(resource: string): ApplicationRecord | undefined {
    for (const { value } of this.#applications.range()) if (value.resource === resource && value.status === 'active') return value;
    return undefined;
  }

  /** The active application registered for a CAS service URL (longest matching prefix). */
  applicationForCasService(service: string): ApplicationRecord | undefined {
    let best: ApplicationRecord | undefined;
    let bestLength = -1;
    for (const { value } of this.#applications.range()) {
      if (value.status !== 'active') continue;
      for (const prefix of value.casServices) {
        if (service.startsWith(prefix) && prefix.length > bestLength) {
          best = value;
          bestLength = prefix.length;
        }
      }
    }
    return best;
  }

  async updateApplication(actor: Actor, clientId: string, change: Partial<Pick<ApplicationRecord, 'name' | 'redirectUris' | 'postLogoutRedirectUris' | 'backchannelLogoutUri' | 'identityCodeAllowed' | 'requireTotp' | 'casServices' | 'casLogoutUrl' | 'status'>>): Promise<ApplicationView> {
    const clean: Partial<ApplicationRecord> = {};
    if (change.name !== undefined) clean.name = requireText(change.name, 'name', 200);
    for (const f of ['redirectUris', 'postLogoutRedirectUris', 'casServices'] as const) if (change[f] !== undefined) clean[f] = change[f]!.map((u) => requireUrl(u, f));
    for (const f of ['backchannelLogoutUri', 'casLogoutUrl'] as const) if (change[f] !== undefined) clean[f] = requireUrl(change[f]!, f);
    if (change.identityCodeAllowed !== undefined) clean.identityCodeAllowed = Boolean(change.identityCodeAllowed);
    if (change.requireTotp !== undefined) clean.requireTotp = Boolean(change.requireTotp);
    if (change.status !== undefined) {
      if (change.status !== 'active' && change.status !== 'disabled') throw new YinxinError('validation-failed', 'status must be active or disabled', { field: 'status' });
      clean.status = change.status;
    }
    return this.#store.transaction((tx) => {
      const cur = tx.get(this.#applications, clientId);
      if (!cur) throw new YinxinError('not-found', `no application '${clientId}'`);
      const next = { ...cur, ...clean };
      tx.put(this.#applications, clientId, next);
      this.#log(tx, actor, 'idp.application.update', `application:${clientId}`, { fields: Object.keys(clean) });
      return applicationView(next);
    });
  }

  async rotateClientSecret(actor: Actor, clientId: string): Promise<{ clientSecret: string }> {
    const clientSecret = randomBytes(32).toString('base64url');
    const sealed = await this.#secrets.seal('client-secret', clientId, clientSecret);
    await this.#store.transaction((tx) => {
      const cur = tx.get(this.#applications, clientId);
      if (!cur) throw new YinxinError('not-found', `no application '${clientId}'`);
      tx.put(this.#applications, clientId, { ...cur, clientSecret: sealed });
      this.#log(tx, actor, 'idp.application.secret-rotate', `application:${clientId}`);
    });
    return { clientSecret };
  }

  /** The application's client secret in clear (for oidc-provider's client metadata only). */
  async clientSecretOf(app: ApplicationRecord): Promise<string> {
    return this.#secrets.open('client-secret', app.clientId, app.clientSecret);
  }

  /** Client authentication for the permission-check endpoint (constant-time comparison). */
  async authenticateClient(clientId: string, secret: string): Promise<ApplicationRecord | undefined> {
    const app = typeof clientId === 'string' ? this.#applications.get(clientId) : undefined;
    const expected = Buffer.from(app ? await this.clientSecretOf(app) : 'x'.repeat(43));
    const given = Buffer.from(String(secret));
    const same = given.length === expected.length && timingSafeEqual(given, expected);
    return app && same && app.status === 'active' ? app : undefined;
  }

  /**
   * Seals client secrets and TOTP seeds that an earlier version stored in clear. Runs once per store
   * (recorded in idp.migrations; a restored older backup runs it again). Each record is rewritten
   * only if it still holds the plain value read (compare-and-swap), with one audit record in the
   * same transaction. Returns how many secrets were sealed.
   */
  async migrateSecrets(): Promise<number> {
    if (this.#migrations.get('sealed-secrets')) return 0;
    let sealed = 0;
    const batch = async <V>(table: Table<V>, entries: Array<{ key: string; plain: string; field: 'clientSecret' | 'totpSecret'; purpose: 'client-secret' | 'totp' }>) => {
      const rewritten = await Promise.all(entries.map(async (e) => ({ ...e, value: await this.#secrets.seal(e.purpose, e.key, e.plain) })));
      await this.#store.transaction((tx) => {
        for (const e of rewritten) {
          const cur = tx.get(table, e.key) as Record<string, unknown> | undefined;
          if (!cur || cur[e.field] !== e.plain) continue;
          tx.put(table, e.key, { ...cur, [e.field]: e.value } as V);
          sealed++;
        }
      });
    };
    // Plain values are strings; sealed ones are { sealed } (the type says sealed: older stores disagree).
    const apps = [...this.#applications.range()].flatMap(({ key, value }) => {
      const plain: unknown = value.clientSecret;
      return typeof plain === 'string' ? [{ key: key as string, plain, field: 'clientSecret' as const, purpose: 'client-secret' as const }] : [];
    });
    const users = [...this.#users.range()].flatMap(({ key, value }) => {
      const plain: unknown = value.totpSecret;
      return typeof plain === 'string' ? [{ key: key as string, plain, field: 'totpSecret' as const, purpose: 'totp' as const }] : [];
    });
    for (let i = 0; i < apps.length; i += 500) await batch(this.#applications, apps.slice(i, i + 500));
    for (let i = 0; i < users.length; i += 500) await batch(this.#users, users.slice(i, i + 500));
    await this.#store.transaction((tx) => {
      tx.put(this.#migrations, 'sealed-secrets', this.#now());
      this.#audit.append(tx, { actor: 'system', action: 'idp.secrets.seal', object: 'idp:secrets', outcome: 'success', details: { sealed } });
    });
    return sealed;
  }

  // ---------------------------------------------------------------- permissions and roles

  async declarePermission(actor: Actor, clientId: string, input: { name: string; description?: string }): Promise<PermissionRecord> {
    if (!PERMISSION_NAME.test(input.name)) throw new YinxinError('validation-failed', 'permission names are 1-128 characters of letters, digits, ":", ".", "_" or "-"', { field: 'name' });
    const record: PermissionRecord = { clientId, name: input.name, description: input.description ?? '' };
    return this.#store.transaction((tx) => {
      if (!tx.get(this.#applications, clientId)) throw new YinxinError('not-found', `no application '${clientId}'`);
      tx.put(this.#permissions, [clientId, input.name], record);
      this.#log(tx, actor, 'idp.permission.declare', `application:${clientId}`, { permission: input.name });
      return record;
    });
  }

  listPermissions(clientId: string): PermissionRecord[] {
    return [...this.#permissions.range({ start: [clientId], end: [clientId, '\uffff'] })].map((e) => e.value);
  }

  async createRole(actor: Actor, input: { name: string; clientId: string; permissions: string[]; description?: string }): Promise<RoleRecord> {
    const record: RoleRecord = { id: randomUUID(), name: requireText(input.name, 'name', 200), clientId: input.clientId, permissions: [...new Set(input.permissions)], description: input.description ?? '' };
    return this.#store.transaction((tx) => {
      if (!tx.get(this.#applications, input.clientId)) throw new YinxinError('not-found', `no application '${input.clientId}'`, { field: 'clientId' });
      for (const p of record.permissions) {
        if (!tx.get(this.#permissions, [input.clientId, p])) throw new YinxinError('validation-failed', `application '${input.clientId}' declares no permission '${p}'`, { field: 'permissions', permission: p });
      }
      tx.put(this.#roles, record.id, record);
      this.#log(tx, actor, 'idp.role.create', `role:${record.id}`, { name: record.name, clientId: record.clientId, permissions: record.permissions });
      return record;
    });
  }

  getRole(id: string): RoleRecord | undefined {
    return this.#roles.get(id);
  }

  listRoles(o: { clientId?: string } = {}): RoleRecord[] {
    return [...this.#roles.range()].map((e) => e.value).filter((r) => !o.clientId || r.clientId === o.clientId);
  }

  async updateRole(actor: Actor, id: string, change: { name?: string; permissions?: string[]; description?: string }): Promise<RoleRecord> {
    return this.#store.transaction((tx) => {
      const cur = tx.get(this.#roles, id);
      if (!cur) throw new YinxinError('not-found', `no role '${id}'`);
      const next: RoleRecord = { ...cur };
      if (change.name !== undefined) next.name = requireText(change.name, 'name', 200);
      if (change.description !== undefined) next.description = change.description;
      if (change.permissions !== undefined) {
        for (const p of change.permissions) if (!tx.get(this.#permissions, [cur.clientId, p])) throw new YinxinError('validation-failed', `application '${cur.clientId}' declares no permission '${p}'`, { field: 'permissions', permission: p });
        next.permissions = [...new Set(change.permissions)];
      }
      tx.put(this.#roles, id, next);
      this.#log(tx, actor, 'idp.role.update', `role:${id}`, { permissions: next.permissions });
      return next;
    });
  }

  async deleteRole(actor: Actor, id: string): Promise<void> {
    await this.#store.transaction((tx) => {
      if (!tx.get(this.#roles, id)) throw new YinxinError('not-found', `no role '${id}'`);
      for (const { value } of this.#assignments.range()) if (value.roleId === id) throw new YinxinError('conflict', 'the role is still assigned');
      tx.remove(this.#roles, id);
      this.#log(tx, actor, 'idp.role.delete', `role:${id}`);
    });
  }

  async assignRole(actor: Actor, input: { roleId: string; subject: { kind: 'user' | 'department'; id: string }; scopeDepartmentId?: string }): Promise<AssignmentRecord> {
    if (input.subject?.kind !== 'user' && input.subject?.kind !== 'department') throw new YinxinError('validation-failed', "subject.kind must be 'user' or 'department'", { field: 'subject' });
    const record: AssignmentRecord = {
      id: randomUUID(), roleId: input.roleId, subject: { kind: input.subject.kind, id: input.subject.id },
      ...(input.scopeDepartmentId ? { scopeDepartmentId: input.scopeDepartmentId } : {}), createdAt: this.#now(), createdBy: actor.name,
    };
    return this.#store.transaction((tx) => {
      if (!tx.get(this.#roles, input.roleId)) throw new YinxinError('not-found', `no role '${input.roleId}'`, { field: 'roleId' });
      const exists = input.subject.kind === 'user' ? tx.get(this.#users, input.subject.id) : tx.get(this.#departments, input.subject.id);
      if (!exists) throw new YinxinError('not-found', `no ${input.subject.kind} '${input.subject.id}'`, { field: 'subject' });
      if (input.scopeDepartmentId && !tx.get(this.#departments, input.scopeDepartmentId)) throw new YinxinError('not-found', `no department '${input.scopeDepartmentId}'`, { field: 'scopeDepartmentId' });
      tx.put(this.#assignments, record.id, record);
      tx.put(this.#assignmentsBySubject, [record.subject.kind, record.subject.id, record.id], 1);
      this.#log(tx, actor, 'idp.role.assign', `role:${record.roleId}`, { subject: record.subject, scopeDepartmentId: record.scopeDepartmentId });
      return record;
    });
  }

  async unassignRole(actor: Actor, assignmentId: string): Promise<void> {
    await this.#store.transaction((tx) => {
      const a = tx.get(this.#assignments, assignmentId);
      if (!a) throw new YinxinError('not-found', `no assignment '${assignmentId}'`);
      tx.remove(this.#assignments, assignmentId);
      tx.remove(this.#assignmentsBySubject, [a.subject.kind, a.subject.id, a.id]);
      this.#log(tx, actor, 'idp.role.unassign', `role:${a.roleId}`, { subject: a.subject });
    });
  }

  listAssignments(subject: { kind: 'user' | 'department'; id: string }): AssignmentRecord[] {
    const out: AssignmentRecord[] = [];
    for (const { key } of this.#assignmentsBySubject.range({ start: [subject.kind, subject.id], end: [subject.kind, subject.id, '\uffff'] })) {
      const a = this.#assignments.get((key as string[])[2]);
      if (a) out.push(a);
    }
    return out;
  }

  /**
   * What a user may do in one application: roles assigned to the user or to any department on the
   * path from the root to the user's department, limited to that application's roles. A scoped
   * assignment contributes its permissions only inside its department subtree (`scoped`).
   */
  authorizationFor(userId: string, clientId: string): Authorization {
    const user = this.#users.get(userId);
    if (!user || user.status !== 'active') return { roles: [], permissions: [], scoped: {} };
    const assignments = this.listAssignments({ kind: 'user', id: userId });
    const dept = user.departmentId ? this.#departments.get(user.departmentId) : undefined;
    for (const d of dept?.path ?? []) assignments.push(...this.listAssignments({ kind: 'department', id: d }));
    const roles = new Set<string>();
    const permissions = new Set<string>();
    const scoped: Record<string, Set<string>> = {};
    const roleCache = new Map<string, RoleRecord | undefined>();
    for (const a of assignments) {
      if (!roleCache.has(a.roleId)) roleCache.set(a.roleId, this.#roles.get(a.roleId));
      const role = roleCache.get(a.roleId);
      if (!role || role.clientId !== clientId) continue;
      roles.add(role.name);
      for (const p of role.permissions) {
        if (a.scopeDepartmentId) (scoped[p] ??= new Set()).add(a.scopeDepartmentId);
        else permissions.add(p);
      }
    }
    for (const p of permissions) delete scoped[p];
    return { roles: [...roles].sort(), permissions: [...permissions].sort(), scoped: Object.fromEntries(Object.entries(scoped).map(([p, s]) => [p, [...s].sort()])) };
  }

  /** May user U do P in application A (optionally: on an object of department D)? */
  may(userId: string, clientId: string, permission: string, departmentId?: string): boolean {
    const auth = this.authorizationFor(userId, clientId);
    if (auth.permissions.includes(permission)) return true;
    const scopes = auth.scoped[permission];
    if (!scopes || !departmentId) return false;
    const d = this.#departments.get(departmentId);
    return !!d && d.path.some((id) => scopes.includes(id));
  }

  #log(tx: Tx, actor: Actor, action: string, object: string, details?: Record<string, unknown>): void {
    this.#audit.append(tx, { actor: actor.name, action, object, outcome: 'success', requestId: actor.requestId, ...(details ? { details } : {}) });
  }
}

function userView(u: UserRecord): UserView {
  const { passwordHash, totpSecret, ...rest } = u;
  return { ...rest, hasPassword: passwordHash !== undefined, hasTotp: totpSecret !== undefined };
}

function applicationView(a: ApplicationRecord): ApplicationView {
  const { clientSecret: _secret, ...rest } = a;
  return rest;
}

function loginKey(login: string): string {
  const t = login.trim();
  // Identity codes are stored with an upper-case check character; login names are lower case.
  return /^\d{17}[\dxX]$/.test(t) ? t.toUpperCase() : t.toLowerCase();
}

function requireText(v: unknown, field: string, max: number): string {
  if (typeof v !== 'string' || !v.trim() || v.length > max) throw new YinxinError('validation-failed', `${field} must be a non-empty string of at most ${max} characters`, { field });
  return v.trim();
}

function requireUrl(v: unknown, field: string): string {
  try {
    const u = new URL(String(v));
    if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new Error('scheme');
    if (u.hash) throw new Error('fragment');
    return u.href;
  } catch {
    throw new YinxinError('validation-failed', `${field}: '${String(v)}' is not an absolute http(s) URL without fragment`, { field });
  }
}

function pageLimit(limit: number | undefined): number {
  return Math.max(1, Math.min(MAX_PAGE, Math.floor(limit ?? 100)));
}

function cursorOf(name: string, id: string): string {
  return Buffer.from(JSON.stringify([name, id])).toString('base64url');
}

function splitCursor(cursor: string): [string, string] {
  try {
    const v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && typeof v[1] === 'string') return [v[0], v[1]];
  } catch { /* fall through */ }
  throw new YinxinError('bad-request', 'invalid paging cursor', { field: 'after' });
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

function base32(bytes: Uint8Array): string {
  let bits = 0;
  let value = 0;
  let out = '';
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

function base32Decode(s: string): Buffer {
  let bits = 0;
  let value = 0;
  const out: number[] = [];
  for (const c of s.replace(/=+$/, '').toUpperCase()) {
    const i = BASE32.indexOf(c);
    if (i < 0) continue;
    value = (value << 5) | i;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 255);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** RFC 6238 TOTP (HOTP of RFC 4226 s5.3 over the time step). */
export function totp(secretBase32: string, step: number): string {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', base32Decode(secretBase32)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  const code = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return String(code).padStart(6, '0');
}
