/**
 * Certificate login: the HTTPS server asks for a client certificate (requestCert: true,
 * rejectUnauthorized: false, so a browser without one still gets the password page), and the
 * certificate the TLS handshake proved possession of is checked here:
 *   1. issued by one of yinxin's CAs (signature verified with the CA's public key; the CA chain is
 *      the appliance's own, so it is trusted as a whole), inside its validity period;
 *   2. not revoked or on hold (the CA's status store, the same data the OCSP responder answers from;
 *      `revocationStatus` lets the composition root plug the OCSP core in);
 *   3. key usage digitalSignature and extended key usage id-kp-clientAuth (RFC 5280 s4.2.1.3, s4.2.1.12);
 *   4. mapped to a user by identity code: the subject's serialNumber attribute (2.5.4.5) holds the
 *      citizen ID (ca/profiles.ts, civil-servant profiles); the user must be active.
 * Every refusal is a YinxinError 'invalid-credentials' with the reason in the audit trail only.
 */
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import type { FastifyRequest } from 'fastify';
import type { Clock } from '../common/clock.ts';
import { YinxinError } from '../common/errors.ts';
import type { Directory, UserRecord } from './directory.ts';

const EKU_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const OID_SERIAL_NUMBER = '2.5.4.5';
const OID_KEY_USAGE = '2.5.29.15';
const OID_EXT_KEY_USAGE = '2.5.29.37';

/** What certificate login needs from the CA core (ca/authority.ts CertificateAuthority satisfies it). */
export interface CertificateAuthorities {
  listAuthorities(): Array<{ name: string }>;
  caChain(name: string): Uint8Array[];
  get(ca: string, serial: string): { status: string } | undefined;
}

export interface CertificateLoginOptions {
  authorities: CertificateAuthorities;
  directory: Directory;
  clock: Clock;
  /** 'good' | 'revoked' | 'on-hold' | ...: defaults to the CA's own record of the certificate. */
  revocationStatus?: (ca: string, serialHex: string) => Promise<string | undefined> | string | undefined;
}

export class CertificateLogin {
  readonly #o: CertificateLoginOptions;
  constructor(o: CertificateLoginOptions) {
    this.#o = o;
  }

  /** The user a TLS client certificate (DER) belongs to, or 'invalid-credentials'. */
  async userFor(der: Uint8Array, ctx: { requestId?: string } = {}): Promise<UserRecord> {
    const refuse = async (reason: string, object = 'certificate:unknown'): Promise<never> => {
      await this.#o.directory.auditEvent({ actor: 'anonymous', action: 'idp.login', object, outcome: 'failure', requestId: ctx.requestId, details: { method: 'certificate', reason } });
      throw new YinxinError('invalid-credentials', 'this certificate cannot be used to sign in');
    };
    let leaf: X509Certificate;
    let parsed: pkijs.Certificate;
    try {
      leaf = new X509Certificate(der);
      parsed = pkijs.Certificate.fromBER(new Uint8Array(der));
    } catch {
      return refuse('malformed');
    }
    const serial = Buffer.from(parsed.serialNumber.valueBlock.valueHexView).toString('hex');
    const issuer = this.#issuerOf(leaf);
    if (!issuer) return refuse('foreign-issuer');
    const object = `cert:${issuer}/${serial}`;
    const now = this.#o.clock.now();
    if (now < new Date(leaf.validFrom) || now > new Date(leaf.validTo)) return refuse('expired', object);
    const status = await (this.#o.revocationStatus ?? ((ca, s) => this.#o.authorities.get(ca, s)?.status))(issuer, serial);
    if (status !== 'good') return refuse(status ? `status-${status}` : 'unknown-certificate', object);
    const extensions = parsed.extensions ?? [];
    const ku = extensions.find((e) => e.extnID === OID_KEY_USAGE);
    if (ku) {
      const bits = asn1js.fromBER(ku.extnValue.valueBlock.valueHexView).result as asn1js.BitString;
      const first = new Uint8Array(bits.valueBlock.valueHexView)[0] ?? 0;
      if (!(first & 0x80)) return refuse('key-usage', object);
    }
    const eku = extensions.find((e) => e.extnID === OID_EXT_KEY_USAGE);
    const purposes = eku ? (asn1js.fromBER(eku.extnValue.valueBlock.valueHexView).result as asn1js.Sequence).valueBlock.value.map((v) => (v as asn1js.ObjectIdentifier).valueBlock.toString()) : [];
    if (!purposes.includes(EKU_CLIENT_AUTH)) return refuse('extended-key-usage', object);
    const identity = parsed.subject.typesAndValues.find((a) => a.type === OID_SERIAL_NUMBER)?.value.valueBlock.value;
    const user = typeof identity === 'string' ? this.#o.directory.findUserByIdentityCode(identity) : undefined;
    if (!user) return refuse('no-user', object);
    if (user.status !== 'active') return refuse(`status-${user.status}`, object);
    return user;
  }

  /** The request's TLS client certificate, if the handshake carried one. */
  static peerCertificate(request: FastifyRequest): Uint8Array | undefined {
    const socket = request.raw.socket as TLSSocket;
    if (typeof socket.getPeerCertificate !== 'function') return undefined;
    const cert = socket.getPeerCertificate(false);
    return cert && cert.raw ? new Uint8Array(cert.raw) : undefined;
  }

  /** For interactionRoutes' certificateLogin option. */
  handler(): (request: FastifyRequest) => Promise<UserRecord> {
    return async (request) => {
      const der = CertificateLogin.peerCertificate(request);
      if (!der) {
        await this.#o.directory.auditEvent({ actor: 'anonymous', action: 'idp.login', object: 'certificate:none', outcome: 'failure', requestId: request.id, details: { method: 'certificate', reason: 'no-certificate' } });
        throw new YinxinError('invalid-credentials', 'no client certificate was presented');
      }
      return this.userFor(der, { requestId: request.id });
    };
  }

  #issuerOf(leaf: X509Certificate): string | undefined {
    for (const { name } of this.#o.authorities.listAuthorities()) {
      const chain = this.#o.authorities.caChain(name);
      if (!chain.length) continue;
      const ca = new X509Certificate(chain[0]);
      if (leaf.checkIssued(ca) && leaf.verify(ca.publicKey)) return name;
    }
    return undefined;
  }
}
