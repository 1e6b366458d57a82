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
  'encryption-csr', 'encryption-generate']);

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

export function print(value: unknown): void {
  process.stdout.write(typeof value === 'string' ? value : `${JSON.stringify(value, null, 2)}\n`);
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

/** Calls the running appliance; trusts the appliance's own TLS chain from the data directory. */
export async function call(c: Config, method: string, url: string, body?: unknown, token?: string): Promise<{ status: number; body: unknown }> {
  const u = new URL(url);
  const certFile = `${dataPaths(c.dataDir).tls}/cert.pem`;
  const ca = existsSync(certFile) ? readFileSync(certFile, 'utf8') : undefined;
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(u, {
      method,
      ...(u.protocol === 'https:' ? { ca, servername: u.hostname } : {}),
      headers: {
        accept: 'application/json',
        ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      timeout: 30_000,
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = text;
        try { parsed = text ? JSON.parse(text) : undefined; } catch { /* not JSON */ }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    req.on('timeout', () => req.destroy(new Error('timed out after 30 s')));
    req.on('error', reject);
    req.end(payload);
  });
}

export async function api(c: Config, method: string, path: string, body?: unknown, needToken = true): Promise<unknown> {
  const token = process.env.YINXIN_TOKEN;
  if (needToken && !token) throw new YinxinError('unauthenticated', 'set YINXIN_TOKEN (yinxin login <user> prints one)');
  const base = process.env.YINXIN_URL ?? c.httpsUrl;
  let res;
  try {
    res = await call(c, method, `${base}${path}`, body, token);
  } catch (e) {
    throw new YinxinError('internal', `cannot reach the appliance at ${base}: ${(e as Error).message} (is it running? yinxin status)`);
  }
  if (res.status >= 400) {
    const p = res.body as { detail?: string; code?: string } | undefined;
    throw new YinxinError('bad-request', `${method} ${path} failed (${res.status} ${p?.code ?? ''}): ${p?.detail ?? JSON.stringify(res.body)}`);
  }
  return res.body;
}

