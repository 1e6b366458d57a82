/**
 * Password hashing with Argon2id (RFC 9106) through node:crypto, stored as PHC strings.
 * Parameters default to Keycloak's (m = 7 MiB, t = 5, p = 1), ~20 ms per hash here.
 */
import { argon2, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import { YinxinError } from '../common/errors.ts';

export interface Argon2Params {
  memoryKiB: number;
  passes: number;
  parallelism: number;
}

export const DEFAULT_ARGON2: Argon2Params = { memoryKiB: 7168, passes: 5, parallelism: 1 };

function derive(password: string, salt: Buffer, p: Argon2Params): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    argon2('argon2id', { message: password, nonce: salt, parallelism: p.parallelism, tagLength: 32, memory: p.memoryKiB, passes: p.passes }, (err, key) =>
      err ? reject(err) : resolve(Buffer.from(key)));
  });
}

export async function hashPassword(password: string, p: Argon2Params = DEFAULT_ARGON2): Promise<string> {
  const salt = randomBytes(16);
  const tag = await derive(password, salt, p);
  return `$argon2id$v=19$m=${p.memoryKiB},t=${p.passes},p=${p.parallelism}$${salt.toString('base64url')}$${tag.toString('base64url')}`;
}

const PHC = /^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)$/;

export async function verifyPassword(password: string, phc: string): Promise<boolean> {
  const m = PHC.exec(phc);
  if (!m) return false;
  const expected = Buffer.from(m[5], 'base64url');
  const tag = await derive(password, Buffer.from(m[4], 'base64url'), { memoryKiB: +m[1], passes: +m[2], parallelism: +m[3] });
  return tag.length === expected.length && timingSafeEqual(tag, expected);
}

/** A PHC string of a random password: verifying against it costs the same as a real one (no user enumeration by timing). */
export const DUMMY_HASH = await hashPassword(randomBytes(18).toString('base64url'));

export interface PasswordPolicy {
  minLength: number;
  /** Character classes (lower, upper, digit, other) of which at least this many must appear. */
  minClasses: number;
}

export const DEFAULT_PASSWORD_POLICY: PasswordPolicy = { minLength: 12, minClasses: 3 };

export function checkPasswordPolicy(password: string, policy: PasswordPolicy = DEFAULT_PASSWORD_POLICY, username?: string): void {
  const problems: string[] = [];
  if ([...password].length < policy.minLength) problems.push(`at least ${policy.minLength} characters`);
  const classes = [/[a-z]/, /[A-Z]/, /[0-9]/, /[^A-Za-z0-9]/].filter((re) => re.test(password)).length;
  if (classes < policy.minClasses) problems.push(`at least ${policy.minClasses} of: lower case, upper case, digits, other characters`);
  if (username && password.toLowerCase().includes(username.toLowerCase())) problems.push('not containing the user name');
  if (problems.length) {
    throw new YinxinError('validation-failed', `the new password does not meet the policy: it needs ${problems.join('; ')}`, { field: 'newPassword', policy });
  }
}

/** A one-time password (bootstrap administrator, reset): 4 groups of 5 from an unambiguous alphabet, meeting the default policy. */
export function generateInitialPassword(): string {
  const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789';
  for (;;) {
    const groups = Array.from({ length: 4 }, () => Array.from({ length: 5 }, () => alphabet[randomInt(alphabet.length)]).join(''));
    const candidate = groups.join('-');
    if (/[a-z]/.test(candidate) && /[A-Z]/.test(candidate) && /[0-9]/.test(candidate)) return candidate;
  }
}
