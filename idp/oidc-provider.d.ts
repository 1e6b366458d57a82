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
