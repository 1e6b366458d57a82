/**
 * Separation of duties: the one authorization table. Every /api/v1 route names exactly one
 * permission (route option `config.permission`); a route without one fails at start-up, and
 * auth/authorization.test.ts calls every route with every role and checks it against this table.
 */

export const ROLES = ['ra-officer', 'ca-admin', 'auditor', 'idp-admin', 'seal-admin'] as const;
export type Role = (typeof ROLES)[number];

export const ROLE_DESCRIPTIONS: Record<Role, string> = {
  'ra-officer': 'enrolls, approves, issues, revokes, suspends and renews certificates; registers seals',
  'ca-admin': 'administers the appliance: CAs, profiles, CRLs, operator accounts, backups',
  'auditor': 'reads the audit trail and the state of everything; changes nothing',
  'idp-admin': 'administers single sign-on: users, departments, applications, roles',
  'seal-admin': 'creates and manages electronic seals',
};

/** 'authenticated' means any signed-in operator (their own password, their own tokens). */
export const PERMISSIONS = {
  'authenticated': [...ROLES],
  'operators:read': ['ca-admin', 'auditor'],
  'operators:write': ['ca-admin'],
  'audit:read': ['auditor'],
  'system:read': ['ca-admin', 'auditor'],
  'ca:read': ['ra-officer', 'ca-admin', 'auditor'],
  'ca:manage': ['ca-admin'],
  'certificates:read': ['ra-officer', 'ca-admin', 'auditor'],
  'certificates:request': ['ra-officer'],
  'certificates:approve': ['ra-officer'],
  'certificates:revoke': ['ra-officer'],
  'keys:recover': ['ra-officer'],
  'tsa:read': ['ca-admin', 'auditor'],
  'idp:read': ['idp-admin', 'auditor'],
  'idp:manage': ['idp-admin'],
  /** Rotating the IdP's token-signing key (every relying party re-fetches the JWKS). */
  'idp:keys': ['idp-admin'],
  /** Asking the attribute authority for an AC of a user's roles (an ra-officer approves it). */
  'idp:attribute-certificates': ['idp-admin'],
  'seals:read': ['seal-admin', 'ra-officer', 'auditor'],
  'seals:manage': ['seal-admin'],
} as const satisfies Record<string, readonly Role[]>;

export type Permission = keyof typeof PERMISSIONS;

/** Routes open to anyone (login itself). Kept explicit so that forgetting a permission is an error. */
export const PUBLIC = 'public' as const;

export function isRole(x: unknown): x is Role {
  return typeof x === 'string' && (ROLES as readonly string[]).includes(x);
}

export function isPermission(x: unknown): x is Permission {
  return typeof x === 'string' && Object.hasOwn(PERMISSIONS, x);
}

export function rolesGrant(roles: readonly Role[], permission: Permission): boolean {
  const allowed: readonly Role[] = PERMISSIONS[permission];
  return roles.some((r) => allowed.includes(r));
}
