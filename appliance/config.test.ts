import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { isYinxinError } from '../common/errors.ts';
import { DEFAULT_PKCS11_MODULE, loadConfig } from './config.ts';

t.test('defaults follow design.md', async (t) => {
  const c = loadConfig({}, '/srv/app');
  t.equal(c.dataDir, '/srv/app/data');
  t.equal(c.host, '127.0.0.1');
  t.equal(c.httpPort, 8080);
  t.equal(c.httpsPort, 8443);
  t.equal(c.publicUrl, 'http://127.0.0.1:8080');
  t.equal(c.httpsUrl, 'https://127.0.0.1:8443');
  t.equal(c.pkcs11.module, DEFAULT_PKCS11_MODULE);
  t.equal(c.pkcs11.embedded, true);
  t.equal(c.pkcs11.tokenLabel, 'yinxin');
});

t.test('environment overrides the file, which overrides defaults', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'yx-config-'));
  writeFileSync(join(dir, 'yinxin.json'), JSON.stringify({ httpPort: 9080, httpsPort: 9443, pkcs11: { tokenLabel: 'from-file' } }));
  const c = loadConfig({ YINXIN_DATA: dir, YINXIN_HTTPS_PORT: '10443' }, '/');
  t.equal(c.httpPort, 9080);
  t.equal(c.httpsPort, 10443);
  t.equal(c.pkcs11.tokenLabel, 'from-file');
  t.ok(c.sources.includes(join(dir, 'yinxin.json')));
});

t.test('every invalid value is reported at once, naming the setting', async (t) => {
  try {
    loadConfig({ YINXIN_HTTP_PORT: 'eighty', YINXIN_HTTPS_PORT: '70000', YINXIN_LOG_LEVEL: 'loud', YINXIN_PUBLIC_URL: 'not a url', YINXIN_TRUST_PROXY: 'maybe', YINXIN_PKCS11_PIN: '1' }, '/');
    t.fail('should throw');
  } catch (e) {
    t.ok(isYinxinError(e, 'config-invalid'));
    const msg = (e as Error).message;
    for (const name of ['YINXIN_HTTP_PORT', 'YINXIN_HTTPS_PORT', 'YINXIN_LOG_LEVEL', 'YINXIN_PUBLIC_URL', 'YINXIN_TRUST_PROXY', 'YINXIN_PKCS11_PIN']) t.match(msg, name);
    t.notMatch(msg, /at .*\.ts:\d+/, 'no stack trace in the message');
  }
});

t.test('same port twice, external module without PIN, broken config file', async (t) => {
  t.throws(() => loadConfig({ YINXIN_HTTP_PORT: '9000', YINXIN_HTTPS_PORT: '9000' }, '/'), /both 9000/);
  t.throws(() => loadConfig({ YINXIN_PKCS11_MODULE: '/opt/vendor/libcryptoki.so' }, '/'), /YINXIN_PKCS11_PIN: required/);
  const dir = mkdtempSync(join(tmpdir(), 'yx-config-'));
  writeFileSync(join(dir, 'broken.json'), '{ "httpPort": ');
  t.throws(() => loadConfig({ YINXIN_CONFIG: join(dir, 'broken.json') }, '/'), /config file .*broken\.json/);
});
