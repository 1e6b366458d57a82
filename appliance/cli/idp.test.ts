/**
 * The `yinxin idp` commands as an operator runs them: the real CLI in a child process against the
 * IdP over HTTPS on 127.0.0.1 (idp/test-support.ts: LMDB store, real TLS). What the commands do is
 * checked through the IdP itself: the printed client secret authenticates the application, an
 * assignment changes what /idp/check answers, a revoked session is gone, and openid-client signs a
 * user in whose sessions the CLI then lists and ends.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import * as client from 'openid-client';
import type { Principal } from '../../auth/operators.ts';
import { beginSignIn, Browser, startTestIdp } from '../../idp/test-support.ts';

const PASSWORD = 'Sunny-Day-2024!';

const idp = await startTestIdp();
const dir = mkdtempSync(join(tmpdir(), 'yinxin-cli-idp-'));
t.teardown(async () => {
  await idp.close();
  rmSync(dir, { recursive: true, force: true });
});
// The CLI trusts the appliance's TLS certificate from the data directory.
mkdirSync(join(dir, 'tls'));
writeFileSync(join(dir, 'tls', 'cert.pem'), idp.tls.cert);

const auditorToken = await (async () => {
  const root: Principal = { kind: 'operator', username: 'root', roles: ['ca-admin'], tokenId: 'x', mustChangePassword: false };
  const { password } = await idp.operators.createOperator(root, { username: 'auditor1', roles: ['auditor'] });
  const first = await idp.operators.login('auditor1', password);
  await idp.operators.changePassword(first.principal, password, 'Correct-Horse-9-Battery');
  return (await idp.operators.login('auditor1', 'Correct-Horse-9-Battery')).token;
})();

const cli = new URL('../cli.ts', import.meta.url).pathname;

/** Runs `yinxin <args>` (asynchronously: the IdP lives in this process). */
function yinxin(args: string[], o: { token?: string; env?: Record<string, string> } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], {
      env: { ...process.env, YINXIN_DATA: dir, YINXIN_URL: idp.issuer, YINXIN_TOKEN: o.token ?? idp.adminToken, YINXIN_LOG_LEVEL: 'silent', ...o.env },
      encoding: 'utf8',
    }, (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }));
  });
}
const idpCli = (...args: string[]) => yinxin(['idp', ...args]);

/** POST /idp/check as the application `clientId` with `secret` (HTTP Basic). */
async function check(clientId: string, secret: string, body: Record<string, string>): Promise<{ status: number; allowed?: boolean }> {
  const res = await idp.fetch(`${idp.issuer}/idp/check`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}` }, body: JSON.stringify(body),
  });
  const json = await res.json() as { allowed?: boolean };
  return { status: res.status, allowed: json.allowed };
}

let userId = '';

t.test('users: add, list, show, suspend, resume; bad input refused', async (t) => {
  const added = await yinxin(['idp', 'users', 'add', '--identity-code', '11010519491231002X', '--name', '王五', '--username', 'wangwu', '--position', '科员'],
    { env: { YINXIN_USER_PASSWORD: PASSWORD } });
  t.equal(added.code, 0, added.stderr);
  const user = JSON.parse(added.stdout);
  userId = user.id;
  t.equal(user.hasPassword, true, 'the password from YINXIN_USER_PASSWORD');
  t.notMatch(added.stdout, /passwordHash|Sunny/, 'no password or hash printed');

  const listed = await idpCli('users', 'list');
  t.equal(listed.code, 0, listed.stderr);
  t.match(listed.stdout, /^id\s+username\s+name\s+status/);
  t.match(listed.stdout, new RegExp(`${userId}\\s+wangwu\\s+王五\\s+active`));
  const shown = JSON.parse((await idpCli('users', 'show', userId)).stdout);
  t.equal(shown.identityCode, '11010519491231002X');

  const suspended = await idpCli('users', 'suspend', userId);
  t.equal(suspended.code, 0, suspended.stderr);
  t.equal(JSON.parse(suspended.stdout).status, 'suspended');
  t.equal(idp.idp.directory.getUser(userId)?.status, 'suspended');
  t.equal(JSON.parse((await idpCli('users', 'resume', userId)).stdout).status, 'active');

  const badCode = await idpCli('users', 'add', '--identity-code', '110105194912310021', '--name', 'x');
  t.not(badCode.code, 0);
  t.match(badCode.stderr, /422 validation-failed.*check character/, 'an invalid citizen ID check digit');
  const missing = await idpCli('users', 'add', '--name', 'x');
  t.equal(missing.code, 2);
  t.match(missing.stderr, /usage: yinxin idp/);
  const unknown = await idpCli('users', 'show', 'no-such-user');
  t.match(unknown.stderr, /404 not-found/);

  const auditor = await yinxin(['idp', 'users', 'list'], { token: auditorToken });
  t.equal(auditor.code, 0, 'an auditor may list');
  const refused = await yinxin(['idp', 'users', 'suspend', userId], { token: auditorToken });
  t.match(refused.stderr, /403 forbidden/, 'but not change');
  t.equal(idp.idp.directory.getUser(userId)?.status, 'active');
});

let secret = '';

t.test('clients: add prints the secret once, which authenticates the application; show hides it; remove disables', async (t) => {
  const added = await idpCli('clients', 'add', 'oa', '--name', '办公系统', '--redirect-uri', 'https://oa.example/cb,https://oa.example/cb2', '--grant-types', 'authorization_code,client_credentials', '--require-totp');
  t.equal(added.code, 0, added.stderr);
  const created = JSON.parse(added.stdout);
  secret = created.clientSecret;
  t.ok(secret.length >= 32, 'the client secret is printed');
  t.match(added.stderr, /shown once/);
  t.same(created.application.redirectUris, ['https://oa.example/cb', 'https://oa.example/cb2']);
  t.equal(created.application.requireTotp, true);
  t.equal((await check('oa', secret, { user: userId, permission: 'x' })).status, 200, 'the printed secret authenticates the application');
  t.equal((await check('oa', 'wrong', { user: userId, permission: 'x' })).status, 401);

  const shown = await idpCli('clients', 'show', 'oa');
  t.equal(JSON.parse(shown.stdout).clientId, 'oa');
  t.notOk(shown.stdout.includes(secret), 'show never prints the secret');
  const listed = await idpCli('clients', 'list');
  t.match(listed.stdout, /oa\s+active/);
  t.notOk(listed.stdout.includes(secret));

  const duplicate = await idpCli('clients', 'add', 'oa', '--name', 'again', '--redirect-uri', 'https://x.example/cb');
  t.match(duplicate.stderr, /409 conflict/);
  const noRedirect = await idpCli('clients', 'add', 'web', '--name', 'Web');
  t.match(noRedirect.stderr, /422 validation-failed.*redirect URI/);

  const gone = await idpCli('clients', 'add', 'old', '--name', 'Old', '--grant-types', 'client_credentials');
  const oldSecret = JSON.parse(gone.stdout).clientSecret;
  t.equal((await check('old', oldSecret, { user: userId, permission: 'x' })).status, 200);
  const removed = await idpCli('clients', 'remove', 'old');
  t.equal(removed.code, 0, removed.stderr);
  t.equal(JSON.parse(removed.stdout).status, 'disabled');
  t.equal((await check('old', oldSecret, { user: userId, permission: 'x' })).status, 401, 'a removed application is refused');
});

t.test('roles: list, assign to a user, list assignments, unassign: /idp/check follows', async (t) => {
  const dir = idp.idp.directory;
  await dir.declarePermission({ name: 'test' }, 'oa', { name: 'doc.approve' });
  const role = await dir.createRole({ name: 'test' }, { name: '审批人', clientId: 'oa', permissions: ['doc.approve'] });
  const listed = await idpCli('roles', 'list', '--application', 'oa');
  t.match(listed.stdout, new RegExp(`${role.id}\\s+oa\\s+审批人\\s+doc.approve`));

  t.equal((await check('oa', secret, { user: userId, permission: 'doc.approve' })).allowed, false);
  const assigned = await idpCli('roles', 'assign', role.id, '--user', userId);
  t.equal(assigned.code, 0, assigned.stderr);
  const assignmentId = JSON.parse(assigned.stdout).id;
  t.equal((await check('oa', secret, { user: userId, permission: 'doc.approve' })).allowed, true, 'the assignment grants the permission');
  const assignments = await idpCli('roles', 'assignments', '--user', userId);
  t.match(assignments.stdout, new RegExp(`${assignmentId}\\s+${role.id}\\s+user:${userId}`));

  const both = await idpCli('roles', 'assign', role.id, '--user', userId, '--department', 'd');
  t.equal(both.code, 2);
  t.match(both.stderr, /give --user or --department/);
  const noRole = await idpCli('roles', 'assign', 'no-such-role', '--user', userId);
  t.match(noRole.stderr, /404 not-found/);

  const unassigned = await idpCli('roles', 'unassign', assignmentId);
  t.equal(unassigned.code, 0, unassigned.stderr);
  t.equal((await check('oa', secret, { user: userId, permission: 'doc.approve' })).allowed, false, 'and unassigning takes it away');
});

t.test('sessions: list a signed-in user\'s sessions, revoke one by its uid, revoke all', async (t) => {
  const { clientSecret } = await idp.idp.directory.createApplication({ name: 'test' }, { clientId: 'rp', name: 'RP', redirectUris: ['https://rp.example/cb'] });
  const config = await client.discovery(new URL(idp.issuer), 'rp', clientSecret, undefined, { [client.customFetch]: idp.fetch as unknown as client.CustomFetch });
  const signIn = async () => {
    const s = await beginSignIn(new Browser(idp.fetch), idp.issuer, { config, redirect: 'https://rp.example/cb' }, { login: 'wangwu', password: PASSWORD });
    if (!s.redirect) throw new Error(`no redirect: ${s.page?.slice(0, 300)}`);
  };
  await signIn();
  await signIn();

  const listed = await idpCli('sessions', 'list', userId, '--json');
  t.equal(listed.code, 0, listed.stderr);
  const uids = (JSON.parse(listed.stdout).items as Array<{ uid: string; applications: string[] }>).map((s) => s.uid);
  t.equal(uids.length, 2, 'two sessions');
  const table = await idpCli('sessions', 'list', userId);
  t.match(table.stdout, /^uid\s+acr\s+amr\s+applications\s+expiresAt/);

  const revoked = await idpCli('sessions', 'revoke', uids[0]);
  t.equal(revoked.code, 0, revoked.stderr);
  const left = JSON.parse((await idpCli('sessions', 'list', userId, '--json')).stdout).items.map((s: { uid: string }) => s.uid);
  t.same(left, [uids[1]], 'that session only');
  t.ok(idp.audit.list({ action: 'idp.session.revoke' }).some((r) => (r.details?.sessions as string[] | undefined)?.includes(uids[0]) && r.actor === 'operator:idpadmin'), 'audited');
  const again = await idpCli('sessions', 'revoke', uids[0]);
  t.match(again.stderr, /404 not-found/, 'an ended session is not found');
  const auditor = await yinxin(['idp', 'sessions', 'revoke', uids[1]], { token: auditorToken });
  t.match(auditor.stderr, /403 forbidden/);

  const all = await idpCli('sessions', 'revoke-all', userId);
  t.equal(all.code, 0, all.stderr);
  t.same(JSON.parse((await idpCli('sessions', 'list', userId, '--json')).stdout).items, []);
});

t.test('usage', async (t) => {
  for (const args of [[], ['nope'], ['users'], ['users', 'show'], ['sessions', 'list'], ['roles', 'unassign']]) {
    const res = await idpCli(...args);
    t.equal(res.code, 2, `yinxin idp ${args.join(' ')}`);
    t.match(res.stderr, /usage: yinxin idp users list/);
  }
  const help = await yinxin(['help']);
  t.match(help.stdout, /idp\s+single sign-on/);
});
