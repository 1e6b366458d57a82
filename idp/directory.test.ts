/**
 * Directory core: department tree paging (no N+1: one range read per page), role assignments to
 * departments inherited by the subtree, scoped assignments, per-application limits, bad input,
 * sign-in throttling that is capped (a guesser cannot lock the victim out for long), TOTP vectors
 * of RFC 6238 Appendix B, audit records for every change.
 */
import t from 'tap';
import { FixedClock } from '../common/clock.ts';
import { MemoryStore, TableAuditLog } from '../ca/test-support.ts';
import { SoftwareKeyStore } from '../hsm/software.ts';
import { Directory, totp } from './directory.ts';
import { SecretBox } from './secret-box.ts';

function setup() {
  const clock = new FixedClock('2025-01-01T00:00:00Z');
  const store = new MemoryStore();
  const audit = new TableAuditLog(store, clock);
  const dir = new Directory({ store, secrets: new SecretBox(new SoftwareKeyStore()), audit, clock, argon2: { memoryKiB: 256, passes: 1, parallelism: 1 }, lockout: { threshold: 2, baseSeconds: 10, maxSeconds: 40 } });
  return { clock, store, audit, dir };
}
const actor = { name: 'operator:test' };

t.test('department tree: paging and subtree inheritance with scopes', async (t) => {
  const { dir, audit, store } = setup();
  const root = await dir.createDepartment(actor, { name: '市政府' });
  const names = Array.from({ length: 25 }, (_, i) => `局${String(i).padStart(2, '0')}`);
  const children = [];
  for (const name of names) children.push(await dir.createDepartment(actor, { name, parentId: root.id }));
  const seen: string[] = [];
  let after: string | undefined;
  do {
    const page = dir.listDepartments(root.id, { after, limit: 10 });
    t.ok(page.items.length <= 10);
    seen.push(...page.items.map((d) => d.name));
    after = page.next;
  } while (after);
  t.same(seen, names, 'every child once, in name order, over three pages');
  t.same(dir.listDepartments(null).items.map((d) => d.id), [root.id]);
  const office = await dir.createDepartment(actor, { name: '科室', parentId: children[3].id });
  t.same(office.path, [root.id, children[3].id, office.id]);

  const user = await dir.createUser(actor, { identityCode: '11010519491231002x', name: '张三', departmentId: office.id });
  t.equal(user.identityCode, '11010519491231002X', 'identity code normalized');
  await t.rejects(dir.createUser(actor, { identityCode: '11010519491231002X', name: 'dup' }), { code: 'conflict' });
  await t.rejects(dir.createUser(actor, { identityCode: '110105194912310021', name: 'bad' }), { code: 'validation-failed' });
  await t.rejects(dir.createUser(actor, { identityCode: '110101199003077774', name: 'x', departmentId: 'nope' }), { code: 'not-found' });

  await dir.createApplication(actor, { clientId: 'docs', name: 'Docs', redirectUris: ['https://docs.example/cb'] });
  await dir.createApplication(actor, { clientId: 'other', name: 'Other', redirectUris: ['https://other.example/cb'] });
  for (const p of ['doc:read', 'doc:approve']) await dir.declarePermission(actor, 'docs', { name: p });
  await dir.declarePermission(actor, 'other', { name: 'o:x' });
  await t.rejects(dir.createRole(actor, { name: 'bad', clientId: 'docs', permissions: ['o:x'] }), { code: 'validation-failed' }, 'a role bundles only its application\'s permissions');
  const reader = await dir.createRole(actor, { name: 'reader', clientId: 'docs', permissions: ['doc:read'] });
  const approver = await dir.createRole(actor, { name: 'approver', clientId: 'docs', permissions: ['doc:approve'] });
  const otherRole = await dir.createRole(actor, { name: 'o', clientId: 'other', permissions: ['o:x'] });
  await dir.assignRole(actor, { roleId: reader.id, subject: { kind: 'department', id: root.id } });
  await dir.assignRole(actor, { roleId: approver.id, subject: { kind: 'user', id: user.id }, scopeDepartmentId: children[3].id });
  await dir.assignRole(actor, { roleId: otherRole.id, subject: { kind: 'user', id: user.id } });

  const auth = dir.authorizationFor(user.id, 'docs');
  t.same(auth, { roles: ['approver', 'reader'], permissions: ['doc:read'], scoped: { 'doc:approve': [children[3].id] } });
  t.ok(dir.may(user.id, 'docs', 'doc:read'), 'inherited from the root department');
  t.ok(dir.may(user.id, 'docs', 'doc:approve', office.id), 'scoped: inside the subtree');
  t.notOk(dir.may(user.id, 'docs', 'doc:approve', children[4].id), 'scoped: outside the subtree');
  t.notOk(dir.may(user.id, 'docs', 'doc:approve'), 'scoped: no department given');
  t.notOk(dir.may(user.id, 'docs', 'o:x'), 'another application\'s permission does not leak');
  await dir.updateUser(actor, user.id, { status: 'suspended' });
  t.notOk(dir.may(user.id, 'docs', 'doc:read'), 'suspended users may nothing');

  await t.rejects(dir.deleteDepartment(actor, children[3].id), { code: 'conflict' }, 'not empty');
  await dir.deleteDepartment(actor, children[24].id);
  t.equal(dir.listDepartments(root.id, { limit: 500 }).items.length, 24);
  t.ok(audit.list({ action: 'idp.role.assign' }).length === 3 && audit.list({ action: 'idp.department.delete' }).length === 1, 'changes audited');
  void store;
});

t.test('password sign-in: same error for every refusal, capped throttle', async (t) => {
  const { dir, clock, audit } = setup();
  const u = await dir.createUser(actor, { identityCode: '11010519491231002X', name: '李四', username: 'lisi', password: 'Sunny-Day-2024!' });
  await t.rejects(dir.setPassword(actor, u.id, 'short'), { code: 'validation-failed' }, 'password policy');
  t.equal((await dir.authenticate('LISI', 'Sunny-Day-2024!')).id, u.id, 'login names are case-insensitive');
  t.equal((await dir.authenticate('11010519491231002x', 'Sunny-Day-2024!')).id, u.id, 'identity code works as login');
  for (const [login, pw] of [['lisi', 'wrong'], ['ghost', 'wrong'], ['lisi', 'wrong']]) {
    await t.rejects(dir.authenticate(login, pw), { code: 'invalid-credentials', message: 'wrong user name or password' });
  }
  await t.rejects(dir.authenticate('lisi', 'Sunny-Day-2024!'), { code: 'invalid-credentials' }, 'throttled: even the right password waits');
  clock.advance(11_000);
  t.ok(await dir.authenticate('lisi', 'Sunny-Day-2024!'), 'throttle over after its (short) time');
  for (let i = 0; i < 10; i++) await dir.authenticate('lisi', 'wrong').catch(() => undefined);
  clock.advance(41_000);
  t.ok(await dir.authenticate('lisi', 'Sunny-Day-2024!'), 'after many failures the victim is kept out at most maxSeconds');
  t.ok(audit.list({ action: 'idp.login' }).some((r) => r.details?.reason === 'throttled'));
});

t.test('TOTP: RFC 6238 Appendix B vectors (SHA-1) and drift window', async (t) => {
  // Secret "12345678901234567890" in base32; the RFC lists 8 digits, we use the last 6.
  const secret = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ';
  t.equal(totp(secret, Math.floor(59 / 30)), '287082');
  t.equal(totp(secret, Math.floor(1111111109 / 30)), '081804');
  t.equal(totp(secret, Math.floor(1234567890 / 30)), '005924');
  t.equal(totp(secret, Math.floor(2000000000 / 30)), '279037');
  const { dir, clock } = setup();
  const u = await dir.createUser(actor, { identityCode: '11010519491231002X', name: 'x' });
  const { secret: s, uri } = await dir.enrollTotp(actor, u.id);
  t.match(uri, /^otpauth:\/\/totp\/yinxin%3A11010519491231002X\?secret=[A-Z2-7]+&issuer=yinxin/);
  const user = dir.getUser(u.id)!;
  const step = Math.floor(clock.now().getTime() / 30_000);
  t.notOk(await dir.spendTotp(user, totp(s, step - 3)));
  t.notOk(await dir.spendTotp(user, 'abcdef'));
  t.ok(await dir.spendTotp(user, totp(s, step - 1)), 'one step of drift');
  t.ok(await dir.spendTotp(user, totp(s, step)));
  t.notOk(await dir.spendTotp(user, totp(s, step)), 'a code accepted once is refused (RFC 6238 s5.2)');
  t.notOk(await dir.spendTotp(user, totp(s, step - 1)), 'so is a code of an earlier step');
});
