/**
 * Separation of duties, route by route: every /api/v1 route of the assembled appliance, called
 * with a token of every role, is refused (403 forbidden) exactly when auth/roles.ts says so.
 */
import { join } from 'node:path';
import t from 'tap';
import { openTestAppliance } from '../appliance/test-support.ts';
import { PERMISSIONS, ROLES, type Role } from './roles.ts';

const { appliance, https, close } = await openTestAppliance('yx-authz-');
t.teardown(close);

const NEW_PASSWORD = 'Correct-Horse-Battery-9';

async function login(username: string, password: string) {
  const res = await https.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username, password } });
  return { status: res.statusCode, body: res.json() as { token: string; mustChangePassword: boolean } };
}

async function signInFirstTime(username: string, oneTimePassword: string): Promise<string> {
  const { body } = await login(username, oneTimePassword);
  const changed = await https.inject({ method: 'POST', url: '/api/v1/auth/password', headers: { authorization: `Bearer ${body.token}` }, payload: { currentPassword: oneTimePassword, newPassword: NEW_PASSWORD } });
  if (changed.statusCode !== 204) throw new Error(`password change failed: ${changed.body}`);
  return body.token;
}

t.test('the bootstrap administrator must change the one-time password before anything else', async (t) => {
  const admin = appliance.bootstrapAdmin;
  t.ok(admin, 'first start created the administrator');
  const { status, body } = await login(admin!.username, admin!.password);
  t.equal(status, 200);
  t.equal(body.mustChangePassword, true);
  const blocked = await https.inject({ method: 'GET', url: '/api/v1/operators', headers: { authorization: `Bearer ${body.token}` } });
  t.equal(blocked.statusCode, 403);
  t.equal(blocked.json().code, 'password-change-required');
  t.equal(blocked.headers['content-type'], 'application/problem+json; charset=utf-8');
  const weak = await https.inject({ method: 'POST', url: '/api/v1/auth/password', headers: { authorization: `Bearer ${body.token}` }, payload: { currentPassword: admin!.password, newPassword: 'short' } });
  t.equal(weak.statusCode, 422, 'a password below the policy is refused');
  t.match(weak.json().detail, /at least 12 characters/);
  await signInFirstTime(admin!.username, admin!.password);
  const again = await login(admin!.username, admin!.password);
  t.equal(again.status, 401, 'the one-time password no longer works');
});

t.test('every route x every role matches the authorization table', async (t) => {
  const adminToken = (await login('admin', NEW_PASSWORD)).body.token;
  const tokens = {} as Record<Role, string>;
  for (const role of ROLES) {
    const created = await https.inject({ method: 'POST', url: '/api/v1/operators', headers: { authorization: `Bearer ${adminToken}` }, payload: { username: `op-${role}`, roles: [role] } });
    t.equal(created.statusCode, 201, `operator with role ${role} created`);
    tokens[role] = await signInFirstTime(`op-${role}`, created.json().password);
  }
  // Sign-out ends the session used to call it: run those last.
  const routes = [...https.apiRoutes].sort((a, b) => Number(a.url.endsWith('/logout')) - Number(b.url.endsWith('/logout')));
  t.ok(routes.length >= 10, `${routes.length} API routes found`);
  for (const route of routes) {
    const url = route.url.replace(/:[A-Za-z]+/g, 'no-such-object');
    const anonymous = await https.inject({ method: route.method as 'GET', url, payload: route.method === 'GET' || route.method === 'DELETE' ? undefined : {} });
    if (route.permission === 'public') {
      t.not(anonymous.statusCode, 401, `${route.method} ${route.url} is public`);
      continue;
    }
    t.equal(anonymous.statusCode, 401, `${route.method} ${route.url} without a token: 401`);
    for (const role of ROLES) {
      const res = await https.inject({
        method: route.method as 'GET', url, headers: { authorization: `Bearer ${tokens[role]}` },
        payload: route.method === 'GET' || route.method === 'DELETE' ? undefined : {},
      });
      const allowed = (PERMISSIONS[route.permission] as readonly Role[]).includes(role);
      if (allowed) t.not(res.statusCode, 403, `${role} may ${route.method} ${route.url} (got ${res.statusCode})`);
      else t.equal(res.json().code, 'forbidden', `${role} may not ${route.method} ${route.url}`);
    }
  }
});

t.test('wrong password, unknown user and locked account look the same from outside', async (t) => {
  const wrong = await login('op-auditor', 'Wrong-Password-123');
  const unknown = await login('nobody-here', 'Wrong-Password-123');
  t.equal(wrong.status, 401);
  t.equal(unknown.status, 401);
  t.same((wrong.body as unknown as { detail: string }).detail, (unknown.body as unknown as { detail: string }).detail);
  for (let i = 0; i < 5; i++) await login('op-auditor', 'Wrong-Password-123');
  const locked = await login('op-auditor', NEW_PASSWORD);
  t.equal(locked.status, 401, 'after repeated failures even the right password is refused for a while');
  const records = appliance.audit.list({ action: 'operator.login', limit: 1000 }).filter((r) => r.object === 'operator:op-auditor' && r.outcome === 'failure');
  t.ok(records.length >= 6, 'each failure is in the audit trail');
});
