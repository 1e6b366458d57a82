/**
 * The `yinxin` CA commands as an operator runs them: the real CLI in a child process against the
 * API and public apps listening on 127.0.0.1 (built as the appliance builds them, with a stub
 * authenticator, the in-memory store and software keys). Files it writes are checked with openssl.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import t from 'tap';
import type { Principal } from '../../auth/operators.ts';
import { FixedClock } from '../../common/clock.ts';
import { YinxinError } from '../../common/errors.ts';
import { toPem } from '../../common/pem.ts';
import { SoftwareKeyStore } from '../../hsm/software.ts';
import { CertificateAuthority } from '../../ca/authority.ts';
import { CrlPublisher } from '../../ca/crl-publisher.ts';
import { buildPkcs12 } from '../../ca/pkcs12.ts';
import { RegistrationAuthority } from '../../ca/ra.ts';
import { caApiRoutes, caPublicRoutes } from '../../ca/routes.ts';
import { MemoryStore, TableAuditLog } from '../../ca/test-support.ts';
import { buildPublicApp, buildSecureApp } from '../app.ts';
import { MetricsRegistry } from '../../common/metrics.ts';
import { parseSan } from './ca.ts';

const dir = mkdtempSync(join(tmpdir(), 'yinxin-cli-ca-'));
const path = (name: string) => join(dir, name);

const principals: Record<string, Principal> = {
  'tok-alice': { kind: 'operator', username: 'alice', roles: ['ra-officer'], tokenId: 'a', mustChangePassword: false },
  'tok-bob': { kind: 'operator', username: 'bob', roles: ['ra-officer'], tokenId: 'b', mustChangePassword: false },
  'tok-admin': { kind: 'operator', username: 'admin', roles: ['ca-admin'], tokenId: 'c', mustChangePassword: false },
};

const clock = new FixedClock(Math.floor(Date.now() / 1000) * 1000 - 60_000);
const store = new MemoryStore();
const keys = new SoftwareKeyStore();
const audit = new TableAuditLog(store, clock);
const authority = await CertificateAuthority.open({ store, keys, audit, clock, options: { baseUrl: 'http://127.0.0.1:8080' } });
await authority.initialize();
const ra = await RegistrationAuthority.open({ store, keys, audit, authority, buildPkcs12 });
const crls = new CrlPublisher({ store, audit, clock, authority, options: { debounceMs: 3_600_000 } });
const common = { logger: pino({ level: 'silent' }), metrics: new MetricsRegistry(), bodyLimit: 1024 * 1024, trustProxy: false, health: [] };
const http: FastifyInstance = await buildPublicApp({ ...common, plugins: [(app) => caPublicRoutes(app, { authority, crls })] });
const https: FastifyInstance = await buildSecureApp({
  ...common, version: 'test',
  authenticator: { authenticate: (bearer) => { const p = principals[bearer]; if (!p) throw new YinxinError('unauthenticated', 'unknown token'); return p; } },
  plugins: [(app) => caApiRoutes(app, { authority, ra, crls })],
});
const publicUrl = await http.listen({ host: '127.0.0.1', port: 0 });
const apiUrl = await https.listen({ host: '127.0.0.1', port: 0 });
t.teardown(async () => {
  await crls.stop();
  await http.close();
  await https.close();
  rmSync(dir, { recursive: true, force: true });
});

const cli = new URL('../cli.ts', import.meta.url).pathname;

/** Runs `yinxin <args>` as `token` (asynchronously: the servers live in this process). */
function yinxin(token: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], {
      env: { ...process.env, YINXIN_DATA: dir, YINXIN_URL: apiUrl, YINXIN_PUBLIC_URL: publicUrl, YINXIN_TOKEN: token, YINXIN_LOG_LEVEL: 'silent' },
      encoding: 'utf8',
    }, (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }));
  });
}

function opensslCsr(subj: string, name: string): string {
  execFileSync('openssl', ['req', '-new', '-utf8', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-keyout', path(`${name}.key`), '-subj', subj, '-out', path(`${name}.csr`)], { stdio: 'pipe' });
  return path(`${name}.csr`);
}

const rootPem = path('root.pem');
const issuingPem = path('issuing.pem');
writeFileSync(rootPem, toPem(authority.caCertificate('root'), 'CERTIFICATE'));
writeFileSync(issuingPem, toPem(authority.caCertificate('issuing'), 'CERTIFICATE'));
const CIVIL = '/C=CN/O=北京市人民政府/CN=张三/serialNumber=11010519491231002X';

t.test('--san parsing', async (t) => {
  t.same(parseSan('dns:www.example.cn, email:a@b.cn,ip:10.0.0.1,api.example.cn'), { dns: ['www.example.cn', 'api.example.cn'], email: ['a@b.cn'], ip: ['10.0.0.1'] });
});

t.test('request submit -> approve by another officer -> cert download (pem, der, chain) -> openssl verify', async (t) => {
  const list = await yinxin('tok-alice', 'ca', 'list');
  t.equal(list.code, 0, list.stderr);
  t.match(list.stdout, /^name\s+parent/);
  t.match(list.stdout, /issuing\s+root\s+ECDSA P-256/);

  const submitted = await yinxin('tok-alice', 'request', 'submit', '--profile', 'civil-servant-signing', '--csr', opensslCsr(CIVIL, 'a'));
  t.equal(submitted.code, 0, submitted.stderr);
  const id = JSON.parse(submitted.stdout).id as string;
  t.match(submitted.stderr, new RegExp(`yinxin request approve ${id}`));

  const self = await yinxin('tok-alice', 'request', 'approve', id);
  t.not(self.code, 0, 'the requester cannot approve');
  t.match(self.stderr, /403 separation-of-duties/);

  const approved = await yinxin('tok-bob', 'request', 'approve', id);
  t.equal(approved.code, 0, approved.stderr);
  const serial = JSON.parse(approved.stdout).certificates[0].serial as string;

  const pending = await yinxin('tok-bob', 'request', 'list', '--status', 'issued');
  t.match(pending.stdout, new RegExp(`${id}\\s+issued`));

  const chain = await yinxin('tok-bob', 'cert', 'download', serial, '--format', 'chain', '--out', path('chain.pem'));
  t.equal(chain.code, 0, chain.stderr);
  const pem = await yinxin('tok-bob', 'cert', 'download', serial);
  t.match(pem.stdout, /^-----BEGIN CERTIFICATE-----/, 'PEM to stdout without --out');
  writeFileSync(path('leaf.pem'), pem.stdout);
  const verified = spawnSync('openssl', ['verify', '-CAfile', rootPem, '-untrusted', path('chain.pem'), path('leaf.pem')], { encoding: 'utf8' });
  t.equal(verified.status, 0, verified.stdout + verified.stderr);

  const der = await yinxin('tok-bob', 'cert', 'download', serial, '--format', 'der', '--out', path('leaf.cer'));
  t.equal(der.code, 0, der.stderr);
  const subject = execFileSync('openssl', ['x509', '-inform', 'DER', '-in', path('leaf.cer'), '-noout', '-subject', '-nameopt', 'utf8,sep_comma_plus_space'], { encoding: 'utf8' });
  t.match(subject, /CN=张三/);

  const shown = await yinxin('tok-bob', 'cert', 'show', serial);
  t.equal(JSON.parse(shown.stdout).status, 'good');
  const missing = await yinxin('tok-bob', 'cert', 'show', '40aabb');
  t.not(missing.code, 0);
  t.match(missing.stderr, /404 not-found/);
});

t.test('generated key: the approval shows the one-time password once; pkcs12 collect writes a file openssl opens, once', async (t) => {
  const submitted = await yinxin('tok-alice', 'request', 'submit', '--profile', 'civil-servant-signing', '--generate', 'ec-p256',
    '--subject', 'CN=李四,O=上海市人民政府,C=CN,serialNumber=11010519491231002X', '--san', 'email:lisi@sh.gov.cn');
  t.equal(submitted.code, 0, submitted.stderr);
  const id = JSON.parse(submitted.stdout).id as string;
  const approved = await yinxin('tok-bob', 'request', 'approve', id);
  t.equal(approved.code, 0, approved.stderr);
  t.notMatch(approved.stdout, /oneTimePassword/, 'the password is not in the JSON a script might log');
  const password = /password[^\n]*\n\s+(\S+)/.exec(approved.stderr)?.[1];
  t.ok(password, 'the password is shown');
  t.match(approved.stderr, new RegExp(`yinxin pkcs12 collect ${id} --out`));

  const collected = await yinxin('tok-alice', 'pkcs12', 'collect', id, '--out', path('lisi.p12'));
  t.equal(collected.code, 0, collected.stderr);
  const opened = spawnSync('openssl', ['pkcs12', '-in', path('lisi.p12'), '-nodes', '-passin', `pass:${password}`], { encoding: 'utf8' });
  t.equal(opened.status, 0, opened.stderr);
  t.match(opened.stdout, /BEGIN PRIVATE KEY/);
  const again = await yinxin('tok-alice', 'pkcs12', 'collect', id, '--out', path('again.p12'));
  t.not(again.code, 0);
  t.match(again.stderr, /404 not-found.*only once/);
});

t.test('cert revoke -> crl publish -> crl fetch: openssl -crl_check refuses; the delta CRL verifies', async (t) => {
  const submitted = JSON.parse((await yinxin('tok-alice', 'request', 'submit', '--profile', 'civil-servant-signing', '--csr', opensslCsr(CIVIL, 'r'))).stdout);
  const serial = JSON.parse((await yinxin('tok-bob', 'request', 'approve', submitted.id)).stdout).certificates[0].serial as string;
  writeFileSync(path('r.pem'), (await yinxin('tok-bob', 'cert', 'download', serial)).stdout);

  const revoked = await yinxin('tok-bob', 'cert', 'revoke', serial, '--reason', 'keyCompromise', '--invalidity-date', new Date(clock.now().getTime() - 86_400_000).toISOString());
  t.equal(revoked.code, 0, revoked.stderr);
  t.equal(JSON.parse(revoked.stdout).reason, 'keyCompromise');
  const notAllowed = await yinxin('tok-bob', 'crl', 'publish', 'issuing');
  t.match(notAllowed.stderr, /403 forbidden/, 'only a ca-admin publishes');
  const published = await yinxin('tok-admin', 'crl', 'publish', 'issuing');
  t.equal(published.code, 0, published.stderr);
  t.equal(JSON.parse(published.stdout).full.entries, 1);

  const fetched = await yinxin('', 'crl', 'fetch', 'issuing', '--out', path('issuing.crl'));
  t.equal(fetched.code, 0, fetched.stderr);
  execFileSync('openssl', ['crl', '-inform', 'DER', '-in', path('issuing.crl'), '-out', path('issuing.crl.pem')]);
  const check = spawnSync('openssl', ['verify', '-crl_check', '-CAfile', rootPem, '-untrusted', issuingPem, '-CRLfile', path('issuing.crl.pem'), path('r.pem')], { encoding: 'utf8' });
  t.not(check.status, 0);
  t.match(check.stdout + check.stderr, /certificate revoked/);

  const delta = await yinxin('', 'crl', 'fetch', 'issuing', '--delta', '--out', path('issuing-delta.crl'));
  t.equal(delta.code, 0, delta.stderr);
  const verified = spawnSync('openssl', ['crl', '-inform', 'DER', '-in', path('issuing-delta.crl'), '-CAfile', issuingPem, '-verify', '-noout', '-text'], { encoding: 'utf8' });
  t.equal(verified.status, 0, verified.stderr);
  t.match(verified.stdout + verified.stderr, /verify OK/);
  t.match(verified.stdout, /Delta CRL Indicator/);

  const unknown = await yinxin('', 'crl', 'fetch', 'nope', '--out', path('nope.crl'));
  t.not(unknown.code, 0);
  t.match(unknown.stderr, /404 unknown-issuer/);
});

t.test('cert list pages with --cursor; ca create; usage errors', async (t) => {
  // Two certificates for 张三 were issued above: one per page.
  const first = await yinxin('tok-bob', 'cert', 'list', '--subject', '张', '--limit', '1');
  t.equal(first.code, 0, first.stderr);
  t.match(first.stdout, /^serial\s+status\s+profile\s+notAfter\s+subject\n[0-9a-f]{32}\s+/);
  const cursor = /more: --cursor (\S+)/.exec(first.stderr)?.[1];
  t.ok(cursor, 'the table output names the next cursor');
  const second = await yinxin('tok-bob', 'cert', 'list', '--subject', '张', '--limit', '1', '--cursor', cursor!, '--json');
  const page = JSON.parse(second.stdout);
  t.equal(page.items.length, 1);
  t.equal(page.next, null, 'the last page');
  t.notOk(first.stdout.includes(page.items[0].serial), 'the next page starts after the first');

  const created = await yinxin('tok-admin', 'ca', 'create', 'device', '--curve', 'P-384');
  t.equal(created.code, 0, created.stderr);
  t.equal(JSON.parse(created.stdout).key, 'ECDSA P-384');
  t.equal(JSON.parse(created.stdout).parent, 'root');

  const usage = await yinxin('tok-alice', 'request', 'submit', '--profile', 'civil-servant-signing');
  t.equal(usage.code, 2);
  t.match(usage.stderr, /--csr <file> or --generate/);
  const both = await yinxin('tok-admin', 'ca', 'create', 'x', '--curve', 'P-256', '--rsa', '3072');
  t.equal(both.code, 2);
  const noOut = await yinxin('tok-alice', 'pkcs12', 'collect', 'req-1');
  t.equal(noOut.code, 2);
  t.match(noOut.stderr, /usage: yinxin pkcs12 collect/);
});
