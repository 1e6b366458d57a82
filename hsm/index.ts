/** The hsm/ folder's public surface: the signer contract, the PKCS#11 and software key stores, SoftHSM2 setup. */
export type { HashName, KeyInfo, KeySpec, KeyStore, SignatureScheme, Signer } from './signer.ts';
export {
  OID, assertSchemeFitsKey, defaultScheme, describeKeySpec, digestAlgorithm, ecdsaRawToDer, hashNameFromOid, hashOfScheme,
  schemeFitsKey, signatureAlgorithm, signatureAlgorithmDer,
} from './algorithms.ts';
export { openPkcs11KeyStore, type Pkcs11KeyStore, type Pkcs11Options } from './pkcs11.ts';
export { DEBIAN_SOFTHSM_MODULE, prepareSoftHsmToken, type SoftHsmToken, type SoftHsmTokenOptions } from './softhsm.ts';
export { SoftwareKeyStore } from './software.ts';
