/**
 * Client secrets and TOTP seeds sealed at rest under an AES-256-GCM key in a real SoftHSM2 token:
 * the LMDB file never holds them in clear, the key is sensitive and never extractable (pkcs11-tool),
 * a sealed value moved to another record does not open, records of an earlier version are sealed on
 * open (and oidc-provider's client metadata still carries the secret it compares), and a TOTP code is
 * spent once across two Directory instances on one store and across a restart.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { TableAuditLog } from '../ca/test-support.ts';
import { FixedClock } from '../common/clock.ts';
import { YinxinError } from '../common/errors.ts';
import { openPkcs11KeyStore, prepareSoftHsmToken } from '../hsm/index.ts';
import { openLmdbStore } from '../store/lmdb.ts';
import type { Store } from '../store/store.ts';
import { Directory, totp, type ApplicationRecord, type UserRecord } from './directory.ts';
import { OidcStorage } from './adapter.ts';
import { clientMetadata } from './provider.ts';
import { IDP_SECRETS_KEY_LABEL, isSealedSecret, SecretBox } from './secret-box.ts';

const MODULE = '/usr/lib/softhsm/libsofthsm2.so';
const PIN = '864209';
const TOKEN = 'yinxin-idp-secrets';
const dir = mkdtempSync(join(tmpdir(), 'yinxin-idp-secrets-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const prepared = await prepareSoftHsmToken({ dir: join(dir, 'hsm'), pin: PIN, soPin: '97531', label: TOKEN });
const keys = await openPkcs11KeyStore({ module: MODULE, tokenLabel: TOKEN, pin: PIN });
t.teardown(() => keys.close());

const clock = new FixedClock('2025-03-01T08:00:00Z');
const actor = { name: 'operator:test' };
const argon2 = { memoryKiB: 256, passes: 1, parallelism: 1 };

function openDirectory(store: Store): { directory: Directory; audit: TableAuditLog } {
  const audit = new TableAuditLog(store, clock);
  return { directory: new Directory({ store, secrets: new SecretBox(keys), audit, clock, argon2 }), audit };
}

t.test('the store file never holds a client secret or TOTP seed in clear', async (t) => {
  const path = join(dir, 'fresh');
  let store = openLmdbStore(path);
  let { directory } = openDirectory(store);
  const { clientSecret } = await directory.createApplication(actor, { clientId: 'portal', name: 'Portal', redirectUris: ['https://portal.example/cb'] });
  const rotated = await directory.rotateClientSecret(actor, 'portal');
  const user = await directory.createUser(actor, { identityCode: '11010519491231002X', name: '张三' });
  const { secret: seed } = await directory.enrollTotp(actor, user.id);
  await store.close();

  const file = readFileSync(join(path, 'data.mdb'));
  for (const [what, s] of [['first client secret', clientSecret], ['rotated client secret', rotated.clientSecret], ['TOTP seed', seed]]) {
    t.equal(file.indexOf(Buffer.from(s, 'utf8')), -1, `${what} is nowhere in data.mdb`);
  }

  store = openLmdbStore(path);
  t.teardown(() => store.close());
  ({ directory } = openDirectory(store));
  const app = directory.getApplication('portal')!;
  t.ok(isSealedSecret(app.clientSecret), 'the record holds { sealed }');
  t.equal(await directory.clientSecretOf(app), rotated.clientSecret, 'it opens after a restart');
  t.ok(await directory.authenticateClient('portal', rotated.clientSecret), 'client authentication (POST /idp/check) works');
  t.notOk(await directory.authenticateClient('portal', clientSecret), 'the secret before rotation does not');
  t.notOk(await directory.authenticateClient('nobody', rotated.clientSecret), 'an unknown client does not');
  const step = Math.floor(clock.now().getTime() / 30_000);
  t.ok(await directory.spendTotp(directory.getUser(user.id)!, totp(seed, step)), 'the seed opens: a current code is accepted');

  const storage = new OidcStorage({ store, clock, clients: (id) => clientMetadata(directory, 'https://idp.example', id) });
  t.equal((await storage.client('portal'))?.client_secret, rotated.clientSecret, "oidc-provider's Client model gets the secret it compares");
});

t.test('a sealed value moved into another record does not open', async (t) => {
  const store = openLmdbStore(join(dir, 'swap'));
  t.teardown(() => store.close());
  const { directory } = openDirectory(store);
  await directory.createApplication(actor, { clientId: 'app-a', name: 'A', redirectUris: ['https://a.example/cb'] });
  const { clientSecret: secretB } = await directory.createApplication(actor, { clientId: 'app-b', name: 'B', redirectUris: ['https://b.example/cb'] });
  const u1 = await directory.createUser(actor, { identityCode: '11010519491231002X', name: 'one' });
  const u2 = await directory.createUser(actor, { identityCode: '110101199003073714', name: 'two' });
  await directory.enrollTotp(actor, u1.id);
  const apps = store.table<ApplicationRecord>('idp.applications');
  const users = store.table<UserRecord>('idp.users');
  await store.transaction((tx) => {
    tx.put(apps, 'app-a', { ...apps.get('app-a')!, clientSecret: apps.get('app-b')!.clientSecret });
    tx.put(users, u2.id, { ...users.get(u2.id)!, totpSecret: users.get(u1.id)!.totpSecret });
  });
  await t.rejects(directory.clientSecretOf(directory.getApplication('app-a')!), { code: 'sealed-secret-invalid' }, "app-b's sealed secret in app-a's record");
  await t.rejects(directory.authenticateClient('app-a', secretB), YinxinError, 'client authentication with it fails loudly, not silently');
  await t.rejects(directory.spendTotp(directory.getUser(u2.id)!, '123456'), { code: 'sealed-secret-invalid' }, "another user's seed");
});

t.test('records of an earlier version (secrets in clear) are sealed on open', async (t) => {
  const path = join(dir, 'legacy');
  let store = openLmdbStore(path);
  const now = clock.now().toISOString();
  const legacySecret = 'legacy-client-secret-aaaaaaaaaaaaaaaaaaaaaaaaaa';
  const legacySeed = 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP';
  await store.transaction((tx) => {
    tx.put(store.table('idp.applications'), 'old-app', {
      clientId: 'old-app', name: 'Old', clientSecret: legacySecret, redirectUris: ['https://old.example/cb'], postLogoutRedirectUris: [], grantTypes: ['authorization_code'],
      identityCodeAllowed: false, requireTotp: false, casServices: [], status: 'active', createdAt: now,
    });
    tx.put(store.table('idp.users'), 'u-old', {
      id: 'u-old', identityCode: '11010519491231002X', name: 'old', departmentId: null, position: '', status: 'active', createdAt: now, updatedAt: now, failedLogins: 0, totpSecret: legacySeed,
    });
    tx.put(store.table('idp.users.login'), '11010519491231002X', 'u-old');
  });
  await store.close();

  store = openLmdbStore(path);
  t.teardown(() => store.close());
  const { directory, audit } = openDirectory(store);
  t.equal(await directory.migrateSecrets(), 2, 'one client secret and one seed sealed');
  t.equal(await directory.migrateSecrets(), 0, 'once');
  t.ok(audit.list({ action: 'idp.secrets.seal' }).some((r) => r.details?.sealed === 2), 'audited');
  const app = directory.getApplication('old-app')!;
  t.ok(isSealedSecret(app.clientSecret));
  t.equal(Buffer.from(app.clientSecret.sealed).indexOf(legacySecret), -1);
  t.equal(await directory.clientSecretOf(app), legacySecret, 'the same secret: relying parties keep working');
  t.ok(await directory.authenticateClient('old-app', legacySecret));
  const user = directory.getUser('u-old')!;
  t.ok(isSealedSecret(user.totpSecret));
  t.ok(await directory.spendTotp(user, totp(legacySeed, Math.floor(clock.now().getTime() / 30_000))), 'the same seed: authenticator apps keep working');
});

t.test('a TOTP code is spent once, whichever process sees it, and after a restart', async (t) => {
  const path = join(dir, 'totp');
  let store = openLmdbStore(path);
  const first = openDirectory(store).directory;
  const second = openDirectory(store).directory;
  const user = await first.createUser(actor, { identityCode: '11010519491231002X', name: 'x' });
  const { secret } = await first.enrollTotp(actor, user.id);
  const code = totp(secret, Math.floor(clock.now().getTime() / 30_000));
  t.ok(await first.spendTotp(first.getUser(user.id)!, code), 'accepted by one instance');
  t.notOk(await second.spendTotp(second.getUser(user.id)!, code), 'refused by another on the same store');
  await store.close();
  store = openLmdbStore(path);
  t.teardown(() => store.close());
  const restarted = openDirectory(store).directory;
  t.notOk(await restarted.spendTotp(restarted.getUser(user.id)!, code), 'refused after a restart');
  clock.advance(30_000);
  t.ok(await restarted.spendTotp(restarted.getUser(user.id)!, totp(secret, Math.floor(clock.now().getTime() / 30_000))), 'the next code is accepted');
});

t.test('pkcs11-tool: the AES key is in the token, sensitive and never extractable', async (t) => {
  const out = execFileSync('pkcs11-tool', ['--module', MODULE, '--token-label', TOKEN, '--login', '--pin', PIN, '--list-objects', '--type', 'secrkey'], {
    env: { ...process.env, SOFTHSM2_CONF: prepared.confPath }, encoding: 'utf8',
  });
  const block = out.split(/\n(?=\S)/).find((b) => b.includes(`label:      ${IDP_SECRETS_KEY_LABEL}`) || new RegExp(`label:\\s+${IDP_SECRETS_KEY_LABEL}`).test(b));
  t.ok(block, `${IDP_SECRETS_KEY_LABEL} listed: ${out}`);
  t.match(block, /AES length 32|AES/);
  const access = /Access:\s+(.*)/.exec(block ?? '')?.[1] ?? '';
  t.match(access, /sensitive/);
  t.match(access, /never extractable/);
  t.notMatch(access, /(^|,\s*)extractable/);
});
