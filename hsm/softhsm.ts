/**
 * A SoftHSM2 token of our own inside the data directory: its configuration file, its token
 * directory, and on first use an initialized token with the user PIN set.
 *
 * The token is initialized in-process through PKCS#11 (C_InitToken, then C_Login as SO and
 * C_InitPIN) rather than with `softhsm2-util`: the PINs never appear on a command line (where
 * any local user can read them in /proc), there is no second binary to find, and the module this
 * process has loaded sees the new token at once (SoftHSM reads SOFTHSM2_CONF only in
 * C_Initialize, and a token initialized by another process after that stays invisible).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { YinxinError } from '../common/errors.ts';
import { acquireModule, loadedModule, P, releaseModule, tokenLabelText, toYinxinError } from './pkcs11-module.ts';

export const DEBIAN_SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';

export interface SoftHsmTokenOptions {
  /** Directory that holds softhsm2.conf and tokens/ (created if missing). */
  dir: string;
  /** User PIN (4 to 255 characters for SoftHSM). */
  pin: string;
  /**
   * Security officer PIN. When absent a random one is used and not kept: nobody can then
   * re-initialize the token or reset the user PIN, which is what an appliance wants.
   */
  soPin?: string;
  /** Token label (at most 32 bytes, PKCS#11 CK_TOKEN_INFO.label). */
  label: string;
  /** The SoftHSM2 module; default Debian's path. */
  module?: string;
}

export interface SoftHsmToken {
  confPath: string;
  module: string;
  /** True when this call initialized the token, false when it was already there. */
  created: boolean;
}

export async function prepareSoftHsmToken(options: SoftHsmTokenOptions): Promise<SoftHsmToken> {
  const { pin, label } = options;
  const modulePath = options.module ?? DEBIAN_SOFTHSM_MODULE;
  if (Buffer.byteLength(label) > 32 || label.length === 0) {
    throw new YinxinError('config-invalid', `the token label "${label}" must be 1 to 32 bytes (YINXIN_PKCS11_TOKEN)`);
  }
  if (pin.length < 4 || pin.length > 255) {
    throw new YinxinError('config-invalid', 'the SoftHSM user PIN must be 4 to 255 characters (YINXIN_PKCS11_PIN)');
  }
  const dir = resolve(options.dir);
  const tokenDir = join(dir, 'tokens');
  const confPath = join(dir, 'softhsm2.conf');
  mkdirSync(tokenDir, { recursive: true, mode: 0o700 });
  writeFileSync(confPath, [
    '# written by yinxin (hsm/softhsm.ts)',
    `directories.tokendir = ${tokenDir}`,
    'objectstore.backend = file',
    'log.level = ERROR',
    'slots.removable = false',
    '',
  ].join('\n'), { mode: 0o600 });

  const already = loadedModule(modulePath);
  if (already && already.softHsmConf !== undefined && resolve(already.softHsmConf) !== confPath) {
    throw new YinxinError('config-invalid', `SoftHSM is already initialized in this process with SOFTHSM2_CONF=${already.softHsmConf}; one process can use one SoftHSM configuration (close the other key store first)`);
  }
  // SoftHSM reads SOFTHSM2_CONF when C_Initialize runs: it must point at our file before that.
  process.env.SOFTHSM2_CONF = confPath;

  const loaded = acquireModule(modulePath);
  const { lib } = loaded;
  try {
    if (findTokenSlot(lib, label)) return { confPath, module: modulePath, created: false };
    const free = lib.C_GetSlotList(true).find((slot) => (lib.C_GetTokenInfo(slot).flags & P.CKF_TOKEN_INITIALIZED) === 0);
    if (!free) throw new YinxinError('hsm-unavailable', `SoftHSM offers no free slot to initialize the token "${label}" in ${tokenDir}`);
    const soPin = options.soPin ?? randomBytes(16).toString('hex');
    try {
      // CK_TOKEN_INFO.label is blank padded (PKCS#11 s3.2); pkcs11js would pad with NULs.
      lib.C_InitToken(free, soPin, label + ' '.repeat(32 - Buffer.byteLength(label)));
    } catch (e) {
      throw toYinxinError(e, 'C_InitToken', label);
    }
    // SoftHSM moves an initialized token to a new slot ID derived from its serial number.
    const slot = findTokenSlot(lib, label);
    if (!slot) throw new YinxinError('hsm-unavailable', `the token "${label}" was initialized but cannot be found again`);
    const session = lib.C_OpenSession(slot, P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
    try {
      lib.C_Login(session, P.CKU_SO, soPin);
      lib.C_InitPIN(session, pin);
      lib.C_Logout(session);
    } catch (e) {
      throw toYinxinError(e, 'C_InitPIN', label);
    } finally {
      lib.C_CloseSession(session);
    }
    return { confPath, module: modulePath, created: true };
  } finally {
    releaseModule(loaded);
  }
}

function findTokenSlot(lib: import('pkcs11js').PKCS11, label: string): Buffer | undefined {
  return lib.C_GetSlotList(true).find((slot) => {
    const info = lib.C_GetTokenInfo(slot);
    return (info.flags & P.CKF_TOKEN_INITIALIZED) !== 0 && tokenLabelText(info.label) === label;
  });
}

