/** oidc-provider ships no type declarations: the surface yinxin uses, loosely typed. */
declare module 'oidc-provider' {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  type Any = any;
  const Provider: Any;
  export default Provider;
  export const ExternalSigningKey: Any;
  export const errors: Any;
  export const interactionPolicy: Any;
}

/** oidc-provider's own keystore initialisation (what its constructor runs on `jwks`); see signing-keys.ts. */
declare module 'oidc-provider/lib/helpers/initialize_keystore.js' {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  export default function initializeKeyStore(this: any, jwks: { keys: unknown[] }): void;
}
