/**
 * Roles exported as attribute certificates (issue 6 item 3): a user's current roles, in one
 * application or all of them, become a request to the attribute authority (ca/attribute-authority.ts)
 * for an RFC 5755 attribute certificate whose holder is the user's civil-servant signing
 * certificate (Holder baseCertificateID, s4.2.2) and whose id-at-role values (s4.4.5) name the
 * roles as `<client id>:<role name>` (the AA writes each as urn:yinxin:role:<percent-encoded>).
 *
 * The request follows the AA's RA workflow: submitted here by an idp-admin, it is issued only when
 * an RA officer (a different person) approves it (POST /api/v1/attribute-certificates/requests/:id/approve).
 * Roles are those of the ID token's `roles` claim at the time of the request; a department scope
 * of an assignment is not carried (an AC attribute has no notion of it).
 */
import type { Clock } from '../common/clock.ts';
import { YinxinError } from '../common/errors.ts';
import type { Directory } from './directory.ts';

/** The profile of the certificates an attribute certificate may be bound to (the AA's default). */
const HOLDER_PROFILE = 'civil-servant-signing';

/** What the export needs from the CA core (ca/authority.ts CertificateAuthority satisfies it). */
export interface HolderCertificates {
  search(q: { identifier: string; profile: string; status: 'good'; limit?: number }): Array<{ ca: string; serial: string; notAfter: string }>;
}

/** The attribute authority's first RA step (ca/attribute-authority.ts AttributeAuthority satisfies it). */
export interface AttributeCertificateRequests<R> {
  submit(input: { holder: { ca: string; serial: string }; roles: string[]; validityDays?: number }, actor: { actor: string; person?: string; requestId?: string }): Promise<R>;
}

export class RoleCertificates<R> {
  readonly #directory: Directory;
  readonly #certificates: HolderCertificates;
  readonly #attributes: AttributeCertificateRequests<R>;
  readonly #clock: Clock;

  constructor(o: { directory: Directory; certificates: HolderCertificates; attributes: AttributeCertificateRequests<R>; clock: Clock }) {
    this.#directory = o.directory;
    this.#certificates = o.certificates;
    this.#attributes = o.attributes;
    this.#clock = o.clock;
  }

  /** The user's roles as `<client id>:<role name>`, in one application or in every application that has roles. */
  rolesOf(userId: string, clientId?: string): string[] {
    const clientIds = clientId !== undefined ? [clientId] : [...new Set(this.#directory.listRoles().map((r) => r.clientId))].sort();
    return clientIds.flatMap((c) => this.#directory.authorizationFor(userId, c).roles.map((role) => `${c}:${role}`));
  }

  /** The user's valid signing certificate that expires last, the holder of their attribute certificates. */
  holderOf(identityCode: string): { ca: string; serial: string } | undefined {
    const now = this.#clock.now().toISOString();
    const valid = this.#certificates.search({ identifier: identityCode, profile: HOLDER_PROFILE, status: 'good', limit: 1000 }).filter((c) => c.notAfter > now);
    const last = valid.sort((a, b) => a.notAfter.localeCompare(b.notAfter)).pop();
    return last ? { ca: last.ca, serial: last.serial } : undefined;
  }

  /** Asks the attribute authority for an AC of the user's current roles; an RA officer approves it. */
  async request(actor: { actor: string; person?: string; requestId?: string }, userId: string, o: { application?: string; validityDays?: number } = {}): Promise<R> {
    const user = this.#directory.getUser(userId);
    if (!user) throw new YinxinError('not-found', `no user '${userId}'`);
    if (user.status !== 'active') throw new YinxinError('conflict', `the user is ${user.status}: only an active user's roles are exported`);
    if (o.application !== undefined && !this.#directory.getApplication(o.application)) throw new YinxinError('not-found', `no application '${o.application}'`, { field: 'application' });
    const roles = this.rolesOf(userId, o.application);
    if (!roles.length) throw new YinxinError('conflict', o.application ? `the user has no role in application '${o.application}'` : 'the user has no role in any application');
    const holder = this.holderOf(user.identityCode);
    if (!holder) {
      throw new YinxinError('conflict', `the user has no valid ${HOLDER_PROFILE} certificate (subject serialNumber = their identity code) to bind an attribute certificate to: issue one first`, { profile: HOLDER_PROFILE });
    }
    return this.#attributes.submit({ holder, roles, ...(o.validityDays !== undefined ? { validityDays: o.validityDays } : {}) }, actor);
  }
}
