/**
 * Subject names and alternative names: checking them against a profile, encoding them
 * (RFC 5280 s4.1.2.4, s4.1.2.6, s4.2.1.6), and reading them back from a CSR.
 *
 * String types: UTF8String for every DirectoryString attribute (RFC 5280 s4.1.2.4 MUST for
 * new certificates); PrintableString only where X.520 requires it (countryName, serialNumber)
 * and the value fits its charset; IA5String for emailAddress (PKCS#9).
 */
import { isIP } from 'node:net';
import * as asn1js from 'asn1js';
import type * as pkijs from 'pkijs';
import { YinxinError } from '../common/errors.ts';
import { oidBlock, raw } from './certificate.ts';
import { validateCitizenId, validateSocialCreditCode } from './identifiers.ts';
import type { Profile, Subject, SubjectAltNames, SubjectAttribute, SubjectAttributeType } from './profiles.ts';

interface AttributeSpec {
  oid: string;
  /** ub-* upper bounds of RFC 5280 Appendix A, in characters. */
  maxLength: number;
  encoding: 'utf8' | 'printable' | 'ia5';
  multiple?: boolean;
}

export const subjectAttributes: Record<SubjectAttributeType, AttributeSpec> = {
  C: { oid: '2.5.4.6', maxLength: 2, encoding: 'printable' },
  ST: { oid: '2.5.4.8', maxLength: 128, encoding: 'utf8' },
  L: { oid: '2.5.4.7', maxLength: 128, encoding: 'utf8' },
  street: { oid: '2.5.4.9', maxLength: 128, encoding: 'utf8' },
  postalCode: { oid: '2.5.4.17', maxLength: 40, encoding: 'utf8' },
  O: { oid: '2.5.4.10', maxLength: 64, encoding: 'utf8' },
  OU: { oid: '2.5.4.11', maxLength: 64, encoding: 'utf8', multiple: true },
  organizationIdentifier: { oid: '2.5.4.97', maxLength: 64, encoding: 'utf8' },
  title: { oid: '2.5.4.12', maxLength: 64, encoding: 'utf8' },
  surname: { oid: '2.5.4.4', maxLength: 64, encoding: 'utf8' },
  givenName: { oid: '2.5.4.42', maxLength: 64, encoding: 'utf8' },
  CN: { oid: '2.5.4.3', maxLength: 64, encoding: 'utf8' },
  serialNumber: { oid: '2.5.4.5', maxLength: 64, encoding: 'printable' },
  emailAddress: { oid: '1.2.840.113549.1.9.1', maxLength: 255, encoding: 'ia5' },
};

/** The order attributes take in an encoded name, most significant first. */
const canonicalOrder: SubjectAttributeType[] = [
  'C', 'ST', 'L', 'street', 'postalCode', 'O', 'OU', 'organizationIdentifier',
  'title', 'surname', 'givenName', 'CN', 'serialNumber', 'emailAddress',
];

const typeByOid = new Map(Object.entries(subjectAttributes).map(([t, s]) => [s.oid, t as SubjectAttributeType]));

const printable = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

function violation(message: string, details: Record<string, unknown>): YinxinError {
  return new YinxinError('policy-violation', message, details);
}

/** Checks the subject against the profile and returns it in canonical order. Throws 'policy-violation' or 'validation-failed'. */
export function checkSubject(profile: Profile, subject: Subject, now?: Date): Subject {
  const allowed = new Set<SubjectAttributeType>([...profile.subject.required, ...profile.subject.allowed]);
  const seen = new Map<SubjectAttributeType, number>();
  for (const attr of subject) {
    if (!Object.hasOwn(subjectAttributes, attr.type)) {
      throw violation(`subject attribute "${attr.type}" is not supported`, { attribute: attr.type });
    }
    if (!allowed.has(attr.type)) {
      throw violation(`profile ${profile.name} does not allow the subject attribute ${attr.type}`, { attribute: attr.type, profile: profile.name });
    }
    const spec = subjectAttributes[attr.type];
    const count = (seen.get(attr.type) ?? 0) + 1;
    if (count > 1 && !spec.multiple) throw violation(`subject attribute ${attr.type} appears more than once`, { attribute: attr.type });
    seen.set(attr.type, count);
    checkAttributeValue(attr);
  }
  for (const required of profile.subject.required) {
    if (!seen.has(required)) throw violation(`profile ${profile.name} requires the subject attribute ${required}`, { attribute: required, profile: profile.name });
  }
  const id = profile.subject.identifier;
  if (id) {
    const value = subject.find((a) => a.type === id.attribute)?.value ?? '';
    try {
      if (id.kind === 'citizen-id') validateCitizenId(value, { now });
      else validateSocialCreditCode(value);
    } catch (e) {
      if (e instanceof YinxinError) {
        throw new YinxinError(e.code, `${id.attribute}: ${e.message}`, { attribute: id.attribute, ...e.details }, { cause: e });
      }
      throw e;
    }
  }
  return [...subject].sort((a, b) => canonicalOrder.indexOf(a.type) - canonicalOrder.indexOf(b.type));
}

/** Checks values only (no profile): for CA names. Requires a CN; returns canonical order. */
export function checkSubjectValues(subject: Subject): Subject {
  for (const attr of subject) {
    if (!Object.hasOwn(subjectAttributes, attr.type)) throw violation(`subject attribute "${attr.type}" is not supported`, { attribute: attr.type });
    checkAttributeValue(attr);
  }
  if (!subject.some((a) => a.type === 'CN')) throw violation('a CA name needs a common name (CN)', { attribute: 'CN' });
  return [...subject].sort((a, b) => canonicalOrder.indexOf(a.type) - canonicalOrder.indexOf(b.type));
}

function checkAttributeValue(attr: SubjectAttribute): void {
  const spec = subjectAttributes[attr.type];
  const value = attr.value;
  if (typeof value !== 'string' || value.trim() === '') throw violation(`subject attribute ${attr.type} is empty`, { attribute: attr.type });
  if (value !== value.trim()) throw violation(`subject attribute ${attr.type} has leading or trailing spaces`, { attribute: attr.type });
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f\u2028\u2029\ufffd]/.test(value)) throw violation(`subject attribute ${attr.type} contains a control character`, { attribute: attr.type });
  if ([...value].length > spec.maxLength) throw violation(`subject attribute ${attr.type} is longer than ${spec.maxLength} characters`, { attribute: attr.type, maxLength: spec.maxLength });
  if (attr.type === 'C' && !/^[A-Z]{2}$/.test(value)) throw violation('countryName must be a two-letter ISO 3166 code such as CN', { attribute: 'C', found: value });
  if (spec.encoding === 'printable' && !printable.test(value)) {
    const bad = [...value].findIndex((ch) => !printable.test(ch));
    throw violation(`subject attribute ${attr.type} may only contain PrintableString characters; character ${bad + 1} is not one`, { attribute: attr.type, position: bad + 1 });
  }
  if (spec.encoding === 'ia5' && !/^[\x20-\x7e]*$/.test(value)) throw violation(`subject attribute ${attr.type} must be ASCII`, { attribute: attr.type });
}

const dnsLabel = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;
const emailPattern = /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@(?=.{1,253}$)[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+$/;

export function isDnsName(name: string, allowSingleLabel = false): boolean {
  if (name.length > 253) return false;
  const labels = name.split('.');
  if (labels.length < 2 && !allowSingleLabel) return false;
  return labels.every((l, i) => (i === 0 && l === '*') || dnsLabel.test(l));
}

/** Checks the alternative names against the profile (and the CN against them for TLS) and normalizes them. */
export function checkSan(profile: Profile, san: SubjectAltNames | undefined, subject: Subject): SubjectAltNames {
  const out: SubjectAltNames = {};
  const dns = (san?.dns ?? []).map((d) => d.toLowerCase());
  const email = san?.email ?? [];
  const ip = san?.ip ?? [];
  const rule = profile.san;
  if (dns.length && rule.dns === 'forbidden') throw violation(`profile ${profile.name} does not allow DNS names`, { field: 'san.dns' });
  if (email.length && rule.email === 'forbidden') throw violation(`profile ${profile.name} does not allow e-mail addresses`, { field: 'san.email' });
  if (ip.length && rule.ip === 'forbidden') throw violation(`profile ${profile.name} does not allow IP addresses`, { field: 'san.ip' });
  if (!dns.length && rule.dns === 'required') throw violation(`profile ${profile.name} requires at least one DNS name`, { field: 'san.dns' });
  if (!email.length && rule.email === 'required') throw violation(`profile ${profile.name} requires an e-mail address`, { field: 'san.email' });
  for (const d of dns) {
    // dNSName is IA5String: internationalized names go in as A-labels (RFC 5280 s7.2).
    if (!isDnsName(d, rule.singleLabelDns)) throw violation(`"${d}" is not a valid DNS name (use A-labels for internationalized names)`, { field: 'san.dns', value: d });
  }
  for (const e of email) if (!emailPattern.test(e)) throw violation(`"${e}" is not a valid e-mail address`, { field: 'san.email', value: e });
  for (const a of ip) if (!isIP(a)) throw violation(`"${a}" is not an IP address`, { field: 'san.ip', value: a });
  if (dns.length) out.dns = [...new Set(dns)];
  if (email.length) out.email = [...new Set(email)];
  if (ip.length) out.ip = [...new Set(ip)];
  if (rule.dns === 'required') {
    const cn = subject.find((a) => a.type === 'CN')?.value.toLowerCase();
    if (cn !== undefined && !dns.includes(cn) && !ip.includes(cn)) {
      throw violation(`the common name "${cn}" must also be one of the DNS names`, { field: 'subject.CN' });
    }
  }
  return out;
}


function encodeValue(attr: SubjectAttribute): asn1js.BaseBlock {
  switch (subjectAttributes[attr.type].encoding) {
    case 'printable': return new asn1js.PrintableString({ value: attr.value });
    case 'ia5': return new asn1js.IA5String({ value: attr.value });
    case 'utf8': return new asn1js.Utf8String({ value: attr.value });
  }
}

/**
 * Recently encoded RDNs: the same country and organization recur across many certificates, so
 * their asn1js encoding is reused (bounded, oldest evicted first).
 */
const rdnCache = new Map<string, Uint8Array>();
const RDN_CACHE_SIZE = 4096;

function encodeRdn(attr: SubjectAttribute): Uint8Array {
  const key = `${attr.type}\u0000${attr.value}`;
  let bytes = rdnCache.get(key);
  if (!bytes) {
    bytes = new Uint8Array(new asn1js.Set({
      value: [new asn1js.Sequence({ value: [oidBlock(subjectAttributes[attr.type].oid), encodeValue(attr)] })],
    }).toBER(false));
    if (rdnCache.size >= RDN_CACHE_SIZE) rdnCache.delete(rdnCache.keys().next().value!);
    rdnCache.set(key, bytes);
  }
  return bytes;
}

/** DER Name of a (checked) subject: one attribute per RDN, in the order given. */
export function encodeName(subject: Subject): Uint8Array {
  return new Uint8Array(new asn1js.Sequence({ value: subject.map((attr) => raw(encodeRdn(attr))) }).toBER(false));
}

/** A subject read from a CSR (pkijs RelativeDistinguishedNames). Unknown attribute types are refused. */
export function subjectFromRdn(rdn: pkijs.RelativeDistinguishedNames): Subject {
  const out: Subject = [];
  for (const tv of rdn.typesAndValues) {
    const type = typeByOid.get(tv.type);
    if (!type) throw violation(`subject attribute ${tv.type} is not supported`, { attribute: tv.type });
    const v = tv.value as unknown as { valueBlock?: { value?: unknown } };
    const value = v.valueBlock?.value;
    if (typeof value !== 'string') throw violation(`subject attribute ${type} is not a string`, { attribute: type });
    out.push({ type, value });
  }
  return out;
}

/** One-line display form, RFC 4514 order (least significant first) for people, e.g. "CN=张三,O=北京市人民政府,C=CN". */
export function formatSubject(subject: Subject): string {
  return [...subject].reverse().map((a) => `${a.type}=${a.value.replace(/([,+"\\<>;=])/g, '\\$1')}`).join(',');
}
