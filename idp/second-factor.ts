/**
 * The pending second-factor step of a sign-in: the password was right (or, for a step-up, the SSO
 * session exists) and the one-time code is not entered yet. It is kept in the store beside the
 * sign-in's oidc-provider Interaction (model 'SecondFactorStep', keyed by the interaction uid,
 * expiring with it and swept with it, adapter.ts), so it survives a restart, is seen by every
 * process on the store, and never outlives the interaction.
 *
 * Each step allows MAX_TOTP_ATTEMPTS codes. The attempt count, the RFC 6238 time step spent by a
 * right code (directory.ts spendTotpIn) and the audit record of a wrong code are one transaction,
 * so parallel guesses cannot get past the limit. The last wrong code leaves the step exhausted: the
 * sign-in starts again from the password (a right password begins a fresh step).
 */
import type { AuditLog } from '../audit/types.ts';
import type { OidcStorage } from './adapter.ts';
import type { Directory, UserRecord } from './directory.ts';

export const MAX_TOTP_ATTEMPTS = 5;
const MODEL = 'SecondFactorStep';

export interface SecondFactorStep {
  userId: string;
  /** Authentication methods (RFC 8176) the sign-in has so far: ['pwd'], or a session's for a step-up. */
  amr: string[];
  /** Wrong codes entered so far. */
  attempts: number;
  /** Epoch ms: the interaction's expiry, which is the step's. */
  expiresAt: number;
}

export type TotpOutcome =
  | { kind: 'accepted'; step: SecondFactorStep }
  /** attemptsLeft 0: that was the last one, the step is exhausted. */
  | { kind: 'wrong'; attemptsLeft: number }
  /** No step (never begun, expired) or an exhausted one: sign in with the password again. */
  | { kind: 'restart' };

export class SecondFactorSteps {
  readonly #storage: OidcStorage;
  readonly #directory: Directory;
  readonly #audit: AuditLog;

  constructor(o: { storage: OidcStorage; directory: Directory; audit: AuditLog }) {
    this.#storage = o.storage;
    this.#directory = o.directory;
    this.#audit = o.audit;
  }

  /** The step of interaction `uid`, if there is one (exhausted or not). */
  pending(uid: string): SecondFactorStep | undefined {
    return this.#storage.find(MODEL, uid) as SecondFactorStep | undefined;
  }

  static exhausted(step: SecondFactorStep): boolean {
    return step.attempts >= MAX_TOTP_ATTEMPTS;
  }

  /** A fresh step for interaction `uid` (after a right password), expiring with the interaction. */
  async begin(uid: string, step: { userId: string; amr: string[] }): Promise<void> {
    await this.#storage.transaction((_tx, entries) => {
      const expiresAt = entries.expiresAt('Interaction', uid);
      if (expiresAt !== undefined) entries.put(MODEL, uid, { ...step, attempts: 0, expiresAt }, expiresAt);
    });
  }

  /**
   * A step-up's step: begun unless the interaction has one already, so reloading the page neither
   * resets the attempt count nor revives an exhausted step. Returns the step in force (undefined
   * when the interaction itself is gone).
   */
  async beginUnlessPending(uid: string, step: { userId: string; amr: string[] }): Promise<SecondFactorStep | undefined> {
    return this.#storage.transaction((_tx, entries) => {
      const existing = entries.get(MODEL, uid) as SecondFactorStep | undefined;
      if (existing?.userId === step.userId) return existing;
      const expiresAt = entries.expiresAt('Interaction', uid);
      if (expiresAt === undefined) return undefined;
      const fresh = { ...step, attempts: 0, expiresAt };
      entries.put(MODEL, uid, fresh, expiresAt);
      return fresh;
    });
  }

  /** Checks `code` for the step of interaction `uid` and counts it; a wrong code is audited in the same transaction. */
  async submit(uid: string, user: UserRecord, code: string, requestId?: string): Promise<TotpOutcome> {
    const seed = await this.#directory.totpSeedOf(user);
    return this.#storage.transaction((tx, entries): TotpOutcome => {
      const step = entries.get(MODEL, uid) as SecondFactorStep | undefined;
      if (!step || step.userId !== user.id || SecondFactorSteps.exhausted(step)) return { kind: 'restart' };
      if (seed !== undefined && this.#directory.spendTotpIn(tx, user, seed, code)) {
        entries.remove(MODEL, uid);
        return { kind: 'accepted', step };
      }
      const attempts = step.attempts + 1;
      entries.put(MODEL, uid, { ...step, attempts }, step.expiresAt);
      const attemptsLeft = MAX_TOTP_ATTEMPTS - attempts;
      this.#audit.append(tx, {
        actor: `user:${user.id}`, action: 'idp.login', object: `user:${user.id}`, outcome: 'failure', requestId,
        details: { reason: 'wrong-totp', attempt: attempts, ...(attemptsLeft === 0 ? { restart: 'password' } : { attemptsLeft }) },
      });
      return { kind: 'wrong', attemptsLeft };
    });
  }
}
