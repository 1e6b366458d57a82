/** The CA folder's public surface (the REST API, CLI and composition root use only this). */
export {
  CertificateAuthority, defaultHierarchy, normalizeSerial, personOf, randomSerial, revocationReasons,
  type Actor, type AuthorityDeps, type AuthorityOptions, type AuthorityRecord, type CaDefinition, type CertificateRecord,
  type CertificateStatus, type HierarchyConfig, type IssueInput, type PreparedCertificate, type SearchQuery,
} from './authority.ts';
export { CertificateTemplate, type FixedExtensions, type IssuerContext, type VariableParts } from './certificate.ts';
export { CrlPublisher, type CrlPublisherOptions, type PublishedCrl } from './crl-publisher.ts';
export { readSubjectPublicKey, type PublicKeyKind, type SubjectPublicKey } from './keys.ts';
export {
  distributionUrls, EKU, getProfile, profiles,
  type Profile, type ProfileConfig, type ProfileName, type Subject, type SubjectAltNames, type SubjectAttribute,
} from './profiles.ts';
export {
  KEY_ARCHIVE_LABEL, RegistrationAuthority,
  type ApprovalResult, type CertificateRequestRecord, type KeyRecoveryRecord, type Pkcs12Builder, type RaDeps, type SubmitInput,
} from './ra.ts';
export { encodeName, formatSubject } from './subject.ts';
