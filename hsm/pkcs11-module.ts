/**
 * One loaded PKCS#11 module per process and path. C_Initialize may succeed only once per
 * process (PKCS#11 v2.40 s5.4: a second call returns CKR_CRYPTOKI_ALREADY_INITIALIZED), so every
 * key store and the token setup share the loaded module, counted by reference: the last release
 * calls C_Finalize.
 */
import { existsSync } from 'node:fs';
import * as graphene from 'graphene-pk11';
import pkcs11js from 'pkcs11js';
import type { PKCS11 } from 'pkcs11js';
import { YinxinError, type ErrorCode } from '../common/errors.ts';

export const P = pkcs11js;

/** Vendor-independent values absent from pkcs11js' constant list (PKCS#11 v3.0 s2.3.5, s6.3). */
export const CKM_EC_EDWARDS_KEY_PAIR_GEN = 0x1055;
export const CKM_EDDSA = 0x1057;
export const CKK_EC_EDWARDS = 0x40;

export interface LoadedModule {
  readonly path: string;
  readonly lib: PKCS11;
  /** The SOFTHSM2_CONF in force when C_Initialize ran (SoftHSM reads it only then). */
  readonly softHsmConf: string | undefined;
}

interface Entry { module: graphene.Module; loaded: LoadedModule; refs: number }

const modules = new Map<string, Entry>();

export function acquireModule(path: string): LoadedModule {
  const existing = modules.get(path);
  if (existing) {
    existing.refs++;
    return existing.loaded;
  }
  if (!existsSync(path)) {
    throw new YinxinError('config-invalid', `the PKCS#11 module ${path} does not exist: set YINXIN_PKCS11_MODULE to the path of the HSM's PKCS#11 library (Debian's SoftHSM2: /usr/lib/softhsm/libsofthsm2.so)`);
  }
  let module: graphene.Module;
  try {
    module = graphene.Module.load(path);
  } catch (e) {
    throw new YinxinError('config-invalid', `the PKCS#11 module ${path} could not be loaded (${firstLine(e)}): set YINXIN_PKCS11_MODULE to a PKCS#11 library`, undefined, { cause: e });
  }
  try {
    // CKF_OS_LOCKING_OK: we call the module from several threads (the signing workers). Without
    // it (NULL or flags 0) SoftHSM assumes a single thread and deadlocks under concurrent C_Sign.
    // graphene ignores CKR_CRYPTOKI_ALREADY_INITIALIZED (someone else in the process did it).
    module.initialize({ flags: P.CKF_OS_LOCKING_OK });
  } catch (e) {
    try { module.close(); } catch { /* nothing more to release */ }
    throw new YinxinError('hsm-unavailable', `the PKCS#11 module ${path} failed to initialize (${firstLine(e)}); check YINXIN_PKCS11_MODULE and, for SoftHSM2, the SOFTHSM2_CONF file`, undefined, { cause: e });
  }
  const loaded: LoadedModule = { path, lib: module.lib, softHsmConf: process.env.SOFTHSM2_CONF };
  modules.set(path, { module, loaded, refs: 1 });
  return loaded;
}

export function releaseModule(loaded: LoadedModule): void {
  const entry = modules.get(loaded.path);
  if (!entry || entry.loaded !== loaded) return;
  if (--entry.refs > 0) return;
  modules.delete(loaded.path);
  try { entry.module.finalize(); } catch { /* already finalized or token gone: nothing to undo */ }
  try { entry.module.close(); } catch { /* ditto */ }
}

/** The module already loaded for `path` in this process, if any (without taking a reference). */
export function loadedModule(path: string): LoadedModule | undefined {
  return modules.get(path)?.loaded;
}

const codeNames = new Map<number, string>();
for (const [name, value] of Object.entries(pkcs11js)) {
  if (name.startsWith('CKR_') && typeof value === 'number' && !codeNames.has(value)) codeNames.set(value, name);
}

/** The CKR_ return value carried by a pkcs11js/graphene error, or undefined. */
export function ckr(e: unknown): number | undefined {
  if (e && typeof e === 'object' && 'code' in e && typeof (e as { code: unknown }).code === 'number') return (e as { code: number }).code;
  const m = e instanceof Error ? /CKR_[A-Z_0-9]+/.exec(e.message) : null;
  if (m) {
    const v = (pkcs11js as unknown as Record<string, unknown>)[m[0]];
    if (typeof v === 'number') return v;
  }
  return undefined;
}

export function ckrName(e: unknown): string {
  const c = ckr(e);
  return c === undefined ? firstLine(e) : codeNames.get(c) ?? `CKR 0x${c.toString(16)}`;
}

const unavailable = new Set<number>([
  P.CKR_DEVICE_REMOVED, P.CKR_TOKEN_NOT_PRESENT, P.CKR_DEVICE_ERROR, P.CKR_SESSION_HANDLE_INVALID,
  P.CKR_SESSION_CLOSED, P.CKR_CRYPTOKI_NOT_INITIALIZED, P.CKR_TOKEN_NOT_RECOGNIZED, P.CKR_USER_NOT_LOGGED_IN,
  P.CKR_DEVICE_MEMORY, P.CKR_SLOT_ID_INVALID, P.CKR_GENERAL_ERROR,
]);
const keyGone = new Set<number>([P.CKR_KEY_HANDLE_INVALID, P.CKR_OBJECT_HANDLE_INVALID]);
const unsupported = new Set<number>([
  P.CKR_MECHANISM_INVALID, P.CKR_MECHANISM_PARAM_INVALID, P.CKR_KEY_TYPE_INCONSISTENT, P.CKR_KEY_FUNCTION_NOT_PERMITTED,
  P.CKR_KEY_SIZE_RANGE, P.CKR_DOMAIN_PARAMS_INVALID, P.CKR_TEMPLATE_INCONSISTENT,
]);

/** Maps a PKCS#11 failure during `operation` to a YinxinError (never a bare stack trace). */
export function toYinxinError(e: unknown, operation: string, subject?: string): YinxinError {
  if (e instanceof YinxinError) return e;
  const c = ckr(e);
  const name = ckrName(e);
  let code: ErrorCode = 'internal';
  let hint = '';
  if (c !== undefined && unavailable.has(c)) {
    code = 'hsm-unavailable';
    hint = ': the token is gone or the session was lost (check the HSM, YINXIN_PKCS11_SLOT/YINXIN_PKCS11_TOKEN, then restart)';
  } else if (c !== undefined && keyGone.has(c)) {
    code = 'key-not-found';
    hint = subject ? `: the key "${subject}" is no longer in the token` : ': the key is no longer in the token';
  } else if (c !== undefined && unsupported.has(c)) {
    code = 'unsupported-algorithm';
    hint = ': the HSM does not support this algorithm or key size';
  } else if (c === P.CKR_PIN_INCORRECT || c === P.CKR_PIN_LEN_RANGE || c === P.CKR_PIN_LOCKED || c === P.CKR_PIN_EXPIRED || c === P.CKR_PIN_INVALID) {
    code = 'hsm-login-failed';
    hint = ': check YINXIN_PKCS11_PIN';
  }
  return new YinxinError(code, `PKCS#11 ${operation}${subject ? ` (${subject})` : ''} failed with ${name}${hint}`, { ckr: name }, { cause: e });
}

export function firstLine(e: unknown): string {
  const s = e instanceof Error ? e.message : String(e);
  return s.split('\n')[0].trim();
}

/** A CK_TOKEN_INFO label without its padding (blanks per PKCS#11 s3.2, NULs from some writers). */
export function tokenLabelText(raw: string): string {
  return raw.replace(/[\s\0]+$/, '');
}
