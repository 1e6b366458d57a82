/**
 * The `yinxin` command line. Local commands work on the data directory (init, start, status,
 * backup, restore, audit verify); API commands talk to the running appliance over HTTPS with a
 * bearer token from YINXIN_TOKEN (get one with `yinxin login`).
 */
import { existsSync, readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { isYinxinError, YinxinError } from '../common/errors.ts';
import { loadConfig, type Config } from './config.ts';
import { dataPaths } from './paths.ts';

interface Command {
  usage: string;
  summary: string;
  run(args: string[], flags: Flags): Promise<number | void>;
}

type Flags = Record<string, string | true>;

function parse(argv: string[]): { words: string[]; flags: Flags } {
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

/** Flags that take a value (others are switches). */
const VALUE_FLAGS = new Set(['roles', 'name', 'password', 'display-name', 'days', 'out', 'url', 'limit', 'from']);

const config = (): Config => loadConfig();

const commands: Record<string, Command> = {
  start: {
    usage: 'yinxin start',
    summary: 'start the appliance (first start creates the data directory, HSM token, keys and administrator)',
    async run() {
      const { startAppliance } = await import('./server.ts');
      const c = config();
      const running = await startAppliance(c);
      const admin = running.appliance.bootstrapAdmin;
      const lines = [
        `yinxin is running (data: ${c.dataDir})`,
        `  public PKI endpoints  ${running.httpUrl}   (/healthz, /metrics, /ocsp, /crl, /ca, /tsa)`,
        `  API, console, IdP     ${running.httpsUrl}  (/api/v1, /api/docs, /admin/)`,
      ];
      if (admin) {
        lines.push('', '  First start: bootstrap administrator created. This password is shown ONCE;',
          '  it must be changed at first sign-in (POST /api/v1/auth/password, or `yinxin passwd`).',
          `    user:     ${admin.username}`, `    password: ${admin.password}`);
      }
      process.stdout.write(`${lines.join('\n')}\n`);
      const stop = () => void running.stop().then(() => process.exit(0), () => process.exit(1));
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
      await new Promise(() => {});
    },
  },
  init: {
    usage: 'yinxin init',
    summary: 'create the data directory, HSM token, keys and bootstrap administrator without starting servers',
    async run() {
      const { openAppliance } = await import('./context.ts');
      const { createLogger } = await import('./server.ts');
      const c = config();
      const a = await openAppliance(c, { logger: createLogger(c) });
      const admin = a.bootstrapAdmin;
      await a.close();
      process.stdout.write(admin
        ? `initialized ${c.dataDir}\nbootstrap administrator: ${admin.username}\none-time password (shown once): ${admin.password}\n`
        : `${c.dataDir} was already initialized\n`);
    },
  },
  status: {
    usage: 'yinxin status',
    summary: 'is the appliance running, and is it healthy',
    async run() {
      const c = config();
      const lock = dataPaths(c.dataDir).lock;
      const pid = existsSync(lock) ? readFileSync(lock, 'utf8').trim() : null;
      process.stdout.write(`data directory: ${c.dataDir}\nconfiguration:  ${c.sources.join(', ')}\n`);
      if (!pid) { process.stdout.write('appliance:      not running\n'); return 3; }
      try {
        const res = await call(c, 'GET', `${c.publicUrl}/healthz`);
        process.stdout.write(`appliance:      running (pid ${pid}), health ${res.status === 200 ? 'ok' : 'FAILING'}\n${JSON.stringify(res.body, null, 2)}\n`);
        return res.status === 200 ? 0 : 1;
      } catch (e) {
        process.stdout.write(`appliance:      pid ${pid} in the lock file, but ${c.publicUrl}/healthz does not answer (${(e as Error).message})\n`);
        return 1;
      }
    },
  },
  backup: {
    usage: 'yinxin backup <file>',
    summary: 'write a consistent snapshot of the data directory (store + HSM token) while the appliance runs',
    async run([file]) {
      if (!file) throw usage('backup');
      const c = config();
      const { openLmdbStore } = await import('../store/lmdb.ts');
      const { createBackup } = await import('../store/backup.ts');
      const store = openLmdbStore(dataPaths(c.dataDir).store, { readOnly: true });
      try {
        await createBackup({ dataDir: c.dataDir, store, file, onProgress: progress('backup') });
      } finally {
        await store.close();
      }
      process.stderr.write('\n');
      process.stdout.write(`backup written to ${file}\n`);
    },
  },
  restore: {
    usage: 'yinxin restore <file> [--force]',
    summary: 'restore a backup into the data directory (the appliance must be stopped)',
    async run([file], flags) {
      if (!file) throw usage('restore');
      const c = config();
      const { acquireInstanceLock } = await import('./lock.ts');
      const { restoreBackup } = await import('../store/backup.ts');
      const { mkdirSync } = await import('node:fs');
      mkdirSync(c.dataDir, { recursive: true, mode: 0o700 });
      const lock = acquireInstanceLock(dataPaths(c.dataDir).lock);
      try {
        await restoreBackup({ file, dataDir: c.dataDir, force: flags.force === true, onProgress: progress('restore') });
      } finally {
        lock.release();
      }
      process.stderr.write('\n');
      process.stdout.write(`restored ${file} into ${c.dataDir}\n`);
    },
  },
  audit: {
    usage: 'yinxin audit verify',
    summary: 'verify the audit trail: hash chain and signed checkpoints; says where it is broken',
    async run([sub]) {
      if (sub !== 'verify') throw usage('audit');
      const c = config();
      const { openLmdbStore } = await import('../store/lmdb.ts');
      const { verifyAuditTrail } = await import('../audit/audit.ts');
      const store = openLmdbStore(dataPaths(c.dataDir).store, { readOnly: true });
      try {
        const result = await verifyAuditTrail(store, {});
        process.stdout.write(`${result.ok ? 'audit trail intact' : 'AUDIT TRAIL BROKEN'}: ${result.records} records checked\n`);
        for (const p of result.problems) process.stdout.write(`  seq ${p.seq}: ${p.kind}: ${p.message}\n`);
        return result.ok ? 0 : 1;
      } finally {
        await store.close();
      }
    },
  },
  login: {
    usage: 'yinxin login <user> [--password <pw>]   (or YINXIN_PASSWORD)',
    summary: 'sign in and print a session token for YINXIN_TOKEN',
    async run([user], flags) {
      if (!user) throw usage('login');
      const password = typeof flags.password === 'string' ? flags.password : process.env.YINXIN_PASSWORD;
      if (!password) throw new YinxinError('bad-request', 'give the password with --password or YINXIN_PASSWORD');
      const c = config();
      const res = await api(c, 'POST', '/api/v1/auth/login', { username: user, password }, false);
      const body = res as { token: string; mustChangePassword: boolean; expiresAt: string };
      process.stdout.write(`${body.token}\n`);
      process.stderr.write(`token valid until ${body.expiresAt}${body.mustChangePassword ? '; change your one-time password first: yinxin passwd' : ''}\nexport YINXIN_TOKEN=<the token above>\n`);
    },
  },
  passwd: {
    usage: 'yinxin passwd   (YINXIN_PASSWORD = current, YINXIN_NEW_PASSWORD = new)',
    summary: 'change your own password',
    async run() {
      const c = config();
      await api(c, 'POST', '/api/v1/auth/password', { currentPassword: process.env.YINXIN_PASSWORD ?? '', newPassword: process.env.YINXIN_NEW_PASSWORD ?? '' });
      process.stdout.write('password changed\n');
    },
  },
  operator: {
    usage: 'yinxin operator list | add <user> --roles r1,r2 [--display-name N] | set <user> [--roles r1,r2] [--disable|--enable] | reset-password <user>',
    summary: 'manage operator accounts (ca-admin)',
    async run([sub, user], flags) {
      const c = config();
      const roles = typeof flags.roles === 'string' ? flags.roles.split(',').map((r) => r.trim()).filter(Boolean) : undefined;
      let out: unknown;
      switch (sub) {
        case 'list': out = await api(c, 'GET', '/api/v1/operators'); break;
        case 'add':
          if (!user || !roles) throw usage('operator');
          out = await api(c, 'POST', '/api/v1/operators', { username: user, roles, ...(typeof flags['display-name'] === 'string' ? { displayName: flags['display-name'] } : {}) });
          break;
        case 'set':
          if (!user) throw usage('operator');
          out = await api(c, 'PATCH', `/api/v1/operators/${encodeURIComponent(user)}`, { ...(roles ? { roles } : {}), ...(flags.disable ? { status: 'disabled' } : flags.enable ? { status: 'active' } : {}) });
          break;
        case 'reset-password':
          if (!user) throw usage('operator');
          out = await api(c, 'POST', `/api/v1/operators/${encodeURIComponent(user)}/reset-password`);
          break;
        default: throw usage('operator');
      }
      process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    },
  },
  token: {
    usage: 'yinxin token create --name N [--roles r1,r2] [--days D] | list | revoke <id>',
    summary: 'API tokens for scripts',
    async run([sub, id], flags) {
      const c = config();
      let out: unknown;
      if (sub === 'create' && typeof flags.name === 'string') {
        out = await api(c, 'POST', '/api/v1/auth/tokens', { name: flags.name, ...(typeof flags.roles === 'string' ? { roles: flags.roles.split(',') } : {}), ...(typeof flags.days === 'string' ? { expiresInDays: Number(flags.days) } : {}) });
      } else if (sub === 'list') out = await api(c, 'GET', '/api/v1/auth/tokens');
      else if (sub === 'revoke' && id) out = await api(c, 'DELETE', `/api/v1/auth/tokens/${encodeURIComponent(id)}`);
      else throw usage('token');
      process.stdout.write(`${JSON.stringify(out ?? { ok: true }, null, 2)}\n`);
    },
  },
  api: {
    usage: 'yinxin api <METHOD> <path> [json-body]',
    summary: 'call any /api/v1 route (see /api/docs) with YINXIN_TOKEN',
    async run([method, path, body]) {
      if (!method || !path) throw usage('api');
      const out = await api(config(), method.toUpperCase(), path, body ? JSON.parse(body) : undefined);
      process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    },
  },
};

function usage(name: string): YinxinError {
  return new YinxinError('bad-request', `usage: ${commands[name].usage}`);
}

function progress(what: string) {
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
async function call(c: Config, method: string, url: string, body?: unknown, token?: string): Promise<{ status: number; body: unknown }> {
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

async function api(c: Config, method: string, path: string, body?: unknown, needToken = true): Promise<unknown> {
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

export async function main(argv: string[]): Promise<number> {
  const { words, flags } = parse(argv);
  const [name, ...args] = words;
  if (!name || name === 'help' || flags.help) {
    const width = Math.max(...Object.keys(commands).map((k) => k.length));
    process.stdout.write(`yinxin — PKI, identity and security services appliance\n\n${Object.entries(commands).map(([k, c]) => `  ${k.padEnd(width)}  ${c.summary}\n  ${' '.repeat(width)}  ${c.usage}`).join('\n')}\n\nConfiguration: YINXIN_* environment variables (README.md).\n`);
    return name ? 0 : 2;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`yinxin: unknown command '${name}' (yinxin help lists them)\n`);
    return 2;
  }
  try {
    return (await command.run(args, flags)) ?? 0;
  } catch (e) {
    if (isYinxinError(e)) {
      process.stderr.write(`yinxin ${name}: ${e.message}\n`);
      return e.code === 'bad-request' ? 2 : 1;
    }
    process.stderr.write(`yinxin ${name}: unexpected error: ${(e as Error).stack ?? e}\n`);
    return 1;
  }
}

if (import.meta.main) {
  process.exitCode = await main(process.argv.slice(2));
}
