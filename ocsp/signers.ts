/**
 * The responder's signing identities.
 *  - Each CA answers through a delegated OCSP signer (RFC 6960 s4.2.2.2): a key `ocsp/<ca>` in the
 *    HSM and a certificate from that CA with the ocsp-signer profile (EKU OCSPSigning,
 *    id-pkix-ocsp-nocheck). ensureOcspSigners() makes or renews them at start-up.
 *  - The attribute authority answers for its attribute certificates with its own key: it is the
 *    issuer (s4.2.2.2 first case), and an AA cannot certify a delegate (it is not a CA).
 *
 *   ocsp.signers   ca -> OcspSignerRecord
 */
import { YinxinError } from '../common/errors.ts';
import type { KeySpec, KeyStore } from '../hsm/signer.ts';
import type { Store, Table } from '../store/store.ts';
import type { CertificateAuthority } from '../ca/authority.ts';
import type { Subject } from '../ca/profiles.ts';
import type { OcspSigner } from './response.ts';

export const OCSP_SIGNERS_TABLE = 'ocsp.signers';
export const ATTRIBUTE_AUTHORITIES_TABLE = 'ca.attribute-authorities';

export interface OcspSignerRecord {
  ca: string;
  keyLabel: string;
  /** Serial (hex) of the responder certificate in ca.certificates. */
  serial: string;
  certificate: Uint8Array;
  notAfter: string;
  issuedAt: string;
}

export interface EnsureOcspSignersInput {
  authority: CertificateAuthority;
  keys: KeyStore;
  store: Store;
  /** Key type of new responder keys (default ECDSA P-256). */
  spec?: KeySpec;
  /** A certificate closer than this to its notAfter is replaced (default 30 days). */
  renewBeforeDays?: number;
  /** Subject of a CA's responder certificate (default C=CN, O=yinxin, CN=yinxin OCSP Responder (<ca>)). */
  subjectFor?: (ca: string) => Subject;
}

export function ocspKeyLabel(ca: string): string {
  return `ocsp/${ca}`;
}

/**
 * Makes sure every CA of the authority has a current delegated OCSP signer; returns them all by
 * CA name. Idempotent: later starts reuse the key and certificate until renewal is due.
 */
export async function ensureOcspSigners(input: EnsureOcspSignersInput): Promise<Map<string, OcspSigner>> {
  const { authority, keys, store } = input;
  const table: Table<OcspSignerRecord> = store.table(OCSP_SIGNERS_TABLE);
  const now = authority.clock.now();
  const renewBeforeMs = (input.renewBeforeDays ?? 30) * 86_400_000;
  const out = new Map<string, OcspSigner>();
  for (const ca of authority.listAuthorities()) {
    const label = ocspKeyLabel(ca.name);
    const existing = table.get(ca.name);
    const hasKey = await keys.hasKey(label);
    if (existing && hasKey && new Date(existing.notAfter).getTime() - now.getTime() > renewBeforeMs
      && new Date(existing.notAfter) <= new Date(ca.notAfter) && authority.get(ca.name, existing.serial)?.status === 'good') {
      out.set(ca.name, { signer: await keys.getSigner(label), certificate: existing.certificate });
      continue;
    }
    // A key without its record is what a start that failed half-way leaves: it is replaced.
    if (hasKey && !existing) await keys.deleteKey(label);
    const signer = hasKey && existing ? await keys.getSigner(label) : await keys.generateKeyPair(label, input.spec ?? { type: 'ec', curve: 'P-256' });
    const subject = input.subjectFor?.(ca.name) ?? [
      { type: 'C', value: 'CN' }, { type: 'O', value: 'yinxin' }, { type: 'CN', value: `yinxin OCSP Responder (${ca.name})` },
    ];
    const record = await authority.issueServiceCertificate(ca.name, 'ocsp-signer', signer, subject);
    const row: OcspSignerRecord = { ca: ca.name, keyLabel: label, serial: record.serial, certificate: record.der, notAfter: record.notAfter, issuedAt: record.issuedAt };
    await store.transaction((tx) => tx.put(table, ca.name, row));
    out.set(ca.name, { signer, certificate: record.der });
  }
  return out;
}

/**
 * Re-reads the signing identities every `everyMs` (a process that does not renew them itself:
 * `yinxin ocsp`, the public processes) and hands them to the responder; returns the stop function.
 */
export function reloadOcspSignersEvery(
  responder: { setSigners(signers: Map<string, OcspSigner>): void }, store: Store, keys: KeyStore, everyMs: number, onError: (e: unknown) => void,
): () => void {
  const timer = setInterval(() => { loadOcspSigners(store, keys).then((s) => responder.setSigners(s), onError); }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}

/**
 * The signing identities a responder needs, read from the store (read-only is enough): every CA's
 * delegated signer from ocsp.signers, every attribute authority's own key and certificate.
 */
export async function loadOcspSigners(store: Store, keys: KeyStore): Promise<Map<string, OcspSigner>> {
  const out = new Map<string, OcspSigner>();
  const signers: Table<OcspSignerRecord> = store.table(OCSP_SIGNERS_TABLE);
  for (const { value } of signers.range()) {
    out.set(value.ca, { signer: await keys.getSigner(value.keyLabel), certificate: value.certificate });
  }
  const aas: Table<{ name: string; keyLabel: string; certificate: Uint8Array }> = store.table(ATTRIBUTE_AUTHORITIES_TABLE);
  for (const { value } of aas.range()) {
    if (out.has(value.name)) throw new YinxinError('config-invalid', `the attribute authority "${value.name}" has the name of a CA`);
    out.set(value.name, { signer: await keys.getSigner(value.keyLabel), certificate: value.certificate });
  }
  return out;
}
