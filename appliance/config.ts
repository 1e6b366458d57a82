/**
 * Configuration: environment variables (YINXIN_*) over an optional JSON file over defaults,
 * validated once at start with messages that name the setting to fix. The file is
 * $YINXIN_CONFIG, or <data dir>/yinxin.json when that exists. Documented in README.md.
 */
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { YinxinError } from '../common/errors.ts';

export const DEFAULT_PKCS11_MODULE = '/usr/lib/softhsm/libsofthsm2.so';
/** A UUID-derived OID (X.667 2.25 arc): ours without registering an arc; replace with the agency's own. */
export const DEFAULT_TSA_POLICY = '2.25.238463219418230195361806478227375470041.10';

export interface Config {
  dataDir: string;
  host: string;
  httpPort: number;
  httpsPort: number;
  /** Base URL of the public HTTP endpoints, as relying parties reach them (AIA, CDP, OCSP URLs). */
  publicUrl: string;
  /** Base URL of the HTTPS side (API, console, OIDC issuer). */
  httpsUrl: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Largest request body accepted anywhere, in bytes. */
  bodyLimit: number;
  /** Trust X-Forwarded-* headers from a reverse proxy in front of the appliance. */
  trustProxy: boolean;
  pkcs11: {
    module: string;
    /** Slot index or id; when absent the token is found by label. */
    slot: number | undefined;
    tokenLabel: string;
    /** When absent and the module is the embedded SoftHSM2, a PIN is generated into the data dir. */
    pin: string | undefined;
    /** True when the module is SoftHSM2 and the token lives inside the data directory. */
    embedded: boolean;
    /** Use keys through session copies made inside the token (YINXIN_PKCS11_SESSION_KEYS=copy, the default) or the token objects (token). */
    sessionKeyCopies: boolean;
  };
  /** Lifetime of an operator's API session, seconds. */
  sessionTtlSeconds: number;
  /** Processes serving the public HTTP port (YINXIN_PUBLIC_PROCESSES): 1 is the main process alone; more share the port (SO_REUSEPORT). */
  publicProcesses: number;
  tsa: {
    /** TSA policy OID put in TSTInfo when the request names none. */
    policy: string;
    /** Further policy OIDs a request may ask for. */
    acceptedPolicies: string[];
    /** genTime precision in milliseconds (1000 = whole seconds; 1, 10, 100 for sub-second). */
    precisionMs: number;
    /** How the TSA learns the clock is synchronised: none, chrony, timedatectl or file:<path> (docs/tsa-time.md). */
    timeSyncCheck: string;
  };
  /** Where the configuration came from, for `yinxin status`. */
  sources: string[];
}

type Env = Record<string, string | undefined>;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** The file's keys mirror the variables: { "httpPort": 8080, "pkcs11": { "module": "..." }, ... }. */
interface FileConfig {
  dataDir?: string; host?: string; httpPort?: number; httpsPort?: number; publicUrl?: string; httpsUrl?: string;
  logLevel?: string; bodyLimit?: number; trustProxy?: boolean; sessionTtlSeconds?: number; publicProcesses?: number;
  pkcs11?: { module?: string; slot?: number; tokenLabel?: string; pin?: string; sessionKeys?: string };
  tsa?: { policy?: string; acceptedPolicies?: string[]; precisionMs?: number; timeSyncCheck?: string };
}

export function loadConfig(env: Env = process.env, cwd = process.cwd()): Config {
  const problems: string[] = [];
  const sources: string[] = ['defaults'];

  const dataDir = resolveDir(env.YINXIN_DATA ?? 'data', cwd);
  const filePath = env.YINXIN_CONFIG ? resolveDir(env.YINXIN_CONFIG, cwd) : join(dataDir, 'yinxin.json');
  let file: FileConfig = {};
  if (env.YINXIN_CONFIG || existsSync(filePath)) {
    try {
      file = JSON.parse(readFileSync(filePath, 'utf8')) as FileConfig;
      if (typeof file !== 'object' || file === null || Array.isArray(file)) throw new Error('not a JSON object');
      sources.push(filePath);
    } catch (e) {
      problems.push(`config file ${filePath}: ${(e as Error).message} (fix the file or unset YINXIN_CONFIG)`);
      file = {};
    }
  }
  if (Object.keys(env).some((k) => k.startsWith('YINXIN_'))) sources.push('environment');

  const str = (name: string, fileValue: unknown, fallback: string): string => {
    const v = env[name] ?? fileValue;
    if (v === undefined) return fallback;
    if (typeof v !== 'string' || v.trim() === '') {
      problems.push(`${name}: must be a non-empty string`);
      return fallback;
    }
    return v;
  };
  const int = (name: string, fileValue: unknown, fallback: number, min: number, max: number, what: string): number => {
    const raw = env[name] ?? fileValue;
    if (raw === undefined) return fallback;
    const n = typeof raw === 'number' ? raw : /^\d+$/.test(String(raw).trim()) ? Number(String(raw).trim()) : NaN;
    if (!Number.isInteger(n) || n < min || n > max) {
      problems.push(`${name}: '${raw}' is not ${what} (${min}-${max})`);
      return fallback;
    }
    return n;
  };
  const bool = (name: string, fileValue: unknown, fallback: boolean): boolean => {
    const raw = env[name] ?? fileValue;
    if (raw === undefined) return fallback;
    if (raw === true || raw === 'true' || raw === '1' || raw === 'yes') return true;
    if (raw === false || raw === 'false' || raw === '0' || raw === 'no') return false;
    problems.push(`${name}: '${raw}' is not a boolean (true or false)`);
    return fallback;
  };

  const host = str('YINXIN_HOST', file.host, '127.0.0.1');
  const httpPort = int('YINXIN_HTTP_PORT', file.httpPort, 8080, 0, 65535, 'a port number');
  const httpsPort = int('YINXIN_HTTPS_PORT', file.httpsPort, 8443, 0, 65535, 'a port number');
  if (httpPort !== 0 && httpPort === httpsPort) problems.push(`YINXIN_HTTP_PORT and YINXIN_HTTPS_PORT are both ${httpPort}: give them different ports`);
  const urlHost = host === '0.0.0.0' || host === '::' ? 'localhost' : host.includes(':') ? `[${host}]` : host;
  const publicUrl = trimSlash(str('YINXIN_PUBLIC_URL', file.publicUrl, `http://${urlHost}:${httpPort}`));
  const httpsUrl = trimSlash(str('YINXIN_HTTPS_URL', file.httpsUrl, `https://${urlHost}:${httpsPort}`));
  for (const [name, value, scheme] of [['YINXIN_PUBLIC_URL', publicUrl, 'http'], ['YINXIN_HTTPS_URL', httpsUrl, 'https']] as const) {
    try {
      const u = new URL(value);
      if (!u.protocol.startsWith(scheme)) problems.push(`${name}: '${value}' must be an ${scheme}:// URL`);
    } catch {
      problems.push(`${name}: '${value}' is not a URL`);
    }
  }
  const logLevel = str('YINXIN_LOG_LEVEL', file.logLevel, 'info');
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) problems.push(`YINXIN_LOG_LEVEL: '${logLevel}' is not one of ${LOG_LEVELS.join(', ')}`);
  const bodyLimit = int('YINXIN_BODY_LIMIT', file.bodyLimit, 1024 * 1024, 1024, 1024 * 1024 * 1024, 'a size in bytes');
  const trustProxy = bool('YINXIN_TRUST_PROXY', file.trustProxy, false);
  const sessionTtlSeconds = int('YINXIN_SESSION_TTL', file.sessionTtlSeconds, 8 * 3600, 60, 30 * 24 * 3600, 'a number of seconds');
  const publicProcesses = int('YINXIN_PUBLIC_PROCESSES', file.publicProcesses, 1, 1, 64, 'a number of processes');

  const module = str('YINXIN_PKCS11_MODULE', file.pkcs11?.module, DEFAULT_PKCS11_MODULE);
  const slotRaw = env.YINXIN_PKCS11_SLOT ?? file.pkcs11?.slot;
  const slot = slotRaw === undefined ? undefined : int('YINXIN_PKCS11_SLOT', slotRaw, 0, 0, 2 ** 32 - 1, 'a slot number');
  const tokenLabel = str('YINXIN_PKCS11_TOKEN', file.pkcs11?.tokenLabel, 'yinxin');
  if (tokenLabel.length > 32) problems.push(`YINXIN_PKCS11_TOKEN: a token label has at most 32 characters (PKCS#11 CK_TOKEN_INFO)`);
  const pin = env.YINXIN_PKCS11_PIN ?? file.pkcs11?.pin;
  if (pin !== undefined && (typeof pin !== 'string' || pin.length < 4)) problems.push('YINXIN_PKCS11_PIN: must be at least 4 characters');
  const embedded = module === DEFAULT_PKCS11_MODULE || /libsofthsm2\.so$/.test(module);
  if (!embedded && pin === undefined) problems.push(`YINXIN_PKCS11_PIN: required with an external PKCS#11 module (${module})`);
  const sessionKeys = str('YINXIN_PKCS11_SESSION_KEYS', file.pkcs11?.sessionKeys, 'copy');
  if (sessionKeys !== 'copy' && sessionKeys !== 'token') problems.push(`YINXIN_PKCS11_SESSION_KEYS: '${sessionKeys}' is not copy or token`);

  const oid = /^[0-2](\.(0|[1-9]\d*))+$/;
  const tsaPolicy = str('YINXIN_TSA_POLICY', file.tsa?.policy, DEFAULT_TSA_POLICY);
  if (!oid.test(tsaPolicy)) problems.push(`YINXIN_TSA_POLICY: '${tsaPolicy}' is not an OID`);
  const acceptedRaw = env.YINXIN_TSA_ACCEPTED_POLICIES ?? file.tsa?.acceptedPolicies?.join(',') ?? '';
  const acceptedPolicies = acceptedRaw.split(',').map((x) => x.trim()).filter(Boolean);
  for (const p of acceptedPolicies) if (!oid.test(p)) problems.push(`YINXIN_TSA_ACCEPTED_POLICIES: '${p}' is not an OID`);
  const precisionMs = int('YINXIN_TSA_PRECISION_MS', file.tsa?.precisionMs, 1000, 1, 1000, 'a precision in milliseconds');
  if (![1, 10, 100, 1000].includes(precisionMs)) problems.push(`YINXIN_TSA_PRECISION_MS: must be 1, 10, 100 or 1000`);
  const timeSyncCheck = str('YINXIN_TIME_SYNC_CHECK', file.tsa?.timeSyncCheck, 'none');
  if (!/^(none|chrony|timedatectl|file:.+)$/.test(timeSyncCheck)) problems.push(`YINXIN_TIME_SYNC_CHECK: '${timeSyncCheck}' is not none, chrony, timedatectl or file:<path>`);

  if (problems.length > 0) {
    throw new YinxinError('config-invalid', `invalid configuration:\n  - ${problems.join('\n  - ')}`, { problems });
  }
  return {
    dataDir, host, httpPort, httpsPort, publicUrl, httpsUrl,
    logLevel: logLevel as Config['logLevel'], bodyLimit, trustProxy, sessionTtlSeconds, publicProcesses,
    pkcs11: { module, slot, tokenLabel, pin, embedded, sessionKeyCopies: sessionKeys === 'copy' },
    tsa: { policy: tsaPolicy, acceptedPolicies, precisionMs, timeSyncCheck },
    sources,
  };
}

function resolveDir(p: string, cwd: string): string {
  return isAbsolute(p) ? p : resolve(cwd, p);
}

function trimSlash(u: string): string {
  return u.replace(/\/+$/, '');
}
