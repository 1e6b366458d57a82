import { readFileSync } from 'node:fs';
import t from 'tap';
import { errorCatalog, isYinxinError, YinxinError } from './errors.ts';

t.test('every error code is documented in docs/errors.md with its HTTP status', async (t) => {
  const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');
  for (const [code, entry] of Object.entries(errorCatalog)) {
    t.match(doc, new RegExp(`\\| \`${code}\` \\| ${entry.status} \\|`), `${code} documented`);
  }
});

t.test('YinxinError carries code, status and details', async (t) => {
  const e = new YinxinError('validation-failed', 'position 18 is wrong', { position: 18 });
  t.equal(e.status, 422);
  t.same(e.details, { position: 18 });
  t.ok(isYinxinError(e, 'validation-failed'));
  t.notOk(isYinxinError(e, 'not-found'));
  t.notOk(isYinxinError(new Error('x')));
});
