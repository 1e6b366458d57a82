/** What every CLI command module shares: the command shape, flag parsing, progress, and the API client. */
import { existsSync, readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { YinxinError } from '../../common/errors.ts';
import { loadConfig, type Config } from '../config.ts';
import { dataPaths } from '../paths.ts';

export type Flags = Record<string, string | true>;

export interface Command {
  usage: string;
  summary: string;
  run(args: string[], flags: Flags): Promise<number | void>;
}

/** Flags that take a value (others are switches). Command modules add theirs here. */
export const VALUE_FLAGS = new Set(['roles', 'name', 'password', 'display-name', 'days', 'out', 'url', 'limit', 'from',
  // cli/ca.ts
  'ca', 'profile', 'subject', 'csr', 'generate', 'san', 'parent', 'curve', 'rsa', 'validity-days', 'format', 'reason',
  'invalidity-date', 'status', 'cursor', 'role', 'identifier', 'organization', 'requester', 'expires-before', 'expires-after',
  'encryption-csr', 'encryption-generate',
  // cli/tsa.ts, cli/seal.ts
  'hash', 'policy', 'untrusted', 'port', 'level', 'anchor', 'anchor-x', 'anchor-y',
  // cli/attributes.ts
  'holder-ca', 'holder-serial', 'position', 'department', 'clearance', 'credit-code', 'kind', 'page', 'x', 'y', 'size', 'location',
  // cli/idp.ts
  'identity-code', 'username', 'redirect-uri', 'post-logout-uri', 'backchannel-logout-uri', 'grant-types', 'resource', 'cas-service', 'cas-logout-url',
  'application', 'user', 'scope-department']);

export function parseArgs(argv: string[]): { words: string[]; flags: Flags } {
  const words: string[] = [];
  const flags: Flags = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') { words.push(...argv.slice(i + 1)); break; }
    if (a.startsWith('--')) {
      const [k, v] = a.slice(2).split(/=(.*)/s, 2);
      if (v !== undefined) flags[k] = v;
      else if (i + 1 < argv.length && !argv[i + 1].startsWith('--') && VALUE_FLAGS.has(k)) flags[k] = argv[++i];
      else flags[k] = true;
    } else words.push(a);
  }
  return { words, flags };
}

export const config = (): Config => loadConfig();

export function usageError(command: Command): YinxinError {
  return new YinxinError('bad-request', `usage: ${command.usage}`);
}

/** A flag's value; a flag given without one is an error, not "absent". */
export function flagValue(flags: Flags, name: string): string | undefined {
  const v = flags[name];
  if (v === true) throw new YinxinError('bad-request', `--${name} needs a value`);
  return v;
}

/** A flag the command cannot do without: its value, or the command's usage as the error. */
export function required(flags: Flags, name: string, command: Command): string {
  const v = flagValue(flags, name);
  if (v === undefined) throw usageError(command);
  return v;
}

/** A query string of the parameters given (undefined ones left out), with its '?'. */
export function query(params: Record<string, string | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** A file named on the command line, or a clear error saying which and why. */
export function readInputFile(path: string, what = 'file'): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (e) {
    throw new YinxinError('bad-request', `cannot read the ${what} ${path}: ${(e as Error).message}`);
  }
}

export function print(value: unknown): void {
  process.stdout.write(typeof value === 'string' ? value : `${JSON.stringify(value, null, 2)}\n`);
}

export type Row = Record<string, unknown>;

/** A list as a table of `columns` (or the page as JSON with --json); the next page's cursor on stderr. */
export function printPage(flags: Flags, page: { items: Row[]; next?: string | null }, columns: string[]): void {
  if (flags.json) { print(page); return; }
  const rows = page.items.map((item) => columns.map((c) => String(item[c] ?? '')));
  const widths = columns.map((c, i) => Math.min(60, Math.max(c.length, ...rows.map((r) => r[i].length))));
  const line = (cells: string[]) => cells.map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]))).join('  ');
  process.stdout.write(`${[line(columns), ...rows.map(line)].join('\n')}\n`);
  if (page.next) process.stderr.write(`more: --cursor ${page.next}\n`);
}

export function progress(what: string) {
  let last = 0;
  return (done: number, total: number) => {
    const now = Date.now();
    if (now - last < 200 && done < total) return;
    last = now;
    const pct = total > 0 ? Math.floor((done / total) * 100) : 100;
    process.stderr.write(`\r${what}: ${pct}% (${(done / 1048576).toFixed(1)} of ${(total / 1048576).toFixed(1)} MiB)`);
  };
}

/** One HTTP(S) exchange with the appliance; trusts the appliance's own TLS chain from the data directory. */
export async function transfer(c: Config, method: string, url: string, o: { token?: string; body?: Uint8Array; contentType?: string; timeoutMs?: number } = {}): Promise<{ status: number; type: string; body: Buffer }> {
  const u = new URL(url);
  const certFile = `${dataPaths(c.dataDir).tls}/cert.pem`;
  const ca = existsSync(certFile) ? readFileSync(certFile, 'utf8') : undefined;
  const timeout = o.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(u, {
      method,
      ...(u.protocol === 'https:' ? { ca, servername: u.hostname } : {}),
      headers: {
        accept: 'application/json, */*',
        ...(o.body ? { 'content-type': o.contentType ?? 'application/octet-stream', 'content-length': o.body.length } : {}),
        ...(o.token ? { authorization: `Bearer ${o.token}` } : {}),
      },
      timeout,
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body: Buffer.concat(chunks) }));
    });
    req.on('timeout', () => req.destroy(new Error(`timed out after ${timeout / 1000} s`)));
    req.on('error', (e) => reject(new YinxinError('internal', `cannot reach ${u.origin}: ${e.message} (is the appliance running? yinxin status)`)));
    req.end(o.body);
  });
}

/** A JSON exchange: the parsed body (or the text when it is not JSON). */
export async function call(c: Config, method: string, url: string, body?: unknown, token?: string): Promise<{ status: number; body: unknown }> {
  const res = await transfer(c, method, url, { token, ...(body === undefined ? {} : { body: Buffer.from(JSON.stringify(body)), contentType: 'application/json' }) });
  const text = res.body.toString('utf8');
  let parsed: unknown = text;
  try { parsed = text ? JSON.parse(text) : undefined; } catch { /* not JSON */ }
  return { status: res.status, body: parsed };
}

/** An exchange whose answer is a file (DER, PEM, PKCS#12, PDF): the bytes; an HTTP error becomes a YinxinError with the problem's detail. */
export async function fetchFile(c: Config, method: string, url: string, token: string | undefined, upload?: { body: Uint8Array; contentType: string }): Promise<{ type: string; body: Buffer }> {
  const res = await transfer(c, method, url, { token, ...upload });
  if (res.status >= 400) throw problemError(method, new URL(url).pathname, res.status, res.body.toString('utf8'));
  return { type: res.type, body: res.body };
}

function problemError(method: string, path: string, status: number, text: string): YinxinError {
  let p: { code?: string; detail?: string } = {};
  try { p = JSON.parse(text) as typeof p; } catch { /* not a problem document */ }
  return new YinxinError('bad-request', `${method} ${path} failed (${status} ${p.code ?? ''}): ${p.detail ?? text.slice(0, 200)}`);
}

export function apiBase(c: Config): string {
  return process.env.YINXIN_URL ?? c.httpsUrl;
}

export function bearerToken(): string {
  const t = process.env.YINXIN_TOKEN;
  if (!t) throw new YinxinError('unauthenticated', 'set YINXIN_TOKEN (yinxin login <user> prints one)');
  return t;
}

export async function api(c: Config, method: string, path: string, body?: unknown, needToken = true): Promise<unknown> {
  const token = needToken ? bearerToken() : process.env.YINXIN_TOKEN;
  const res = await call(c, method, `${apiBase(c)}${path}`, body, token);
  if (res.status >= 400) throw problemError(method, path, res.status, typeof res.body === 'string' ? res.body : JSON.stringify(res.body));
  return res.body;
}
