import t from 'tap';
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { YinxinError } from '../common/errors.ts';
import {
  citizenIdCheckCharacter, citizenIdProvinceCodes, normalizeCitizenId, normalizeSocialCreditCode,
  organizationCodeCheckCharacter, socialCreditCheckCharacter, validateCitizenId, validateSocialCreditCode,
} from './identifiers.ts';

const fixtures = JSON.parse(readFileSync(new URL('./fixtures/identifiers.json', import.meta.url), 'utf8')) as {
  validCitizenIds: { id: string }[];
  invalidCitizenIds: { id: string; why: string; position?: number; expected?: string }[];
  validSocialCreditCodes: { code: string }[];
  invalidSocialCreditCodes: { code: string; why: string; position?: number; expected?: string }[];
};

const NOW = new Date('2025-06-01T00:00:00Z');
const USCC_CHARSET = '0123456789ABCDEFGHJKLMNPQRTUWXY';

function rejection(fn: () => void): YinxinError {
  try {
    fn();
  } catch (e) {
    if (e instanceof YinxinError) return e;
    throw e;
  }
  throw new Error('expected a rejection, got none');
}

t.test('GB 11643-1999 standard example and fixtures', async (t) => {
  for (const { id } of fixtures.validCitizenIds) t.doesNotThrow(() => validateCitizenId(id, { now: NOW }), id);
  t.equal(citizenIdCheckCharacter('11010519491231002'), 'X', 'the standard computes X for its example');
  for (const bad of fixtures.invalidCitizenIds) {
    const e = rejection(() => validateCitizenId(bad.id, { now: NOW }));
    t.equal(e.code, 'validation-failed', bad.why);
    t.equal(e.details?.field, 'citizenId');
    if (bad.position) t.equal(e.details?.position, bad.position, `${bad.why}: position`);
    if (bad.expected) t.equal(e.details?.expected, bad.expected, `${bad.why}: expected`);
  }
});

t.test('citizen ID messages say what is wrong and what it should be', async (t) => {
  t.equal(rejection(() => validateCitizenId('110105194912310029', { now: NOW })).message,
    "citizen ID check character at position 18 is '9', expected 'X'");
  t.match(rejection(() => validateCitizenId('1101051949123100', { now: NOW })).message, /18 characters long, got 16/);
  t.match(rejection(() => validateCitizenId('11010519491231A02X', { now: NOW })).message, /position 15 is 'A', expected a digit/);
  t.match(rejection(() => validateCitizenId('99010519491231002X', { now: NOW })).message, /region code '990105'.*'99'/);
  t.match(rejection(() => validateCitizenId('110105190002290010', { now: NOW })).message, /1900-02 has 28 days/, '1900 was not a leap year');
  t.match(rejection(() => validateCitizenId('110105194913310023', { now: NOW })).message, /month 13/);
  t.match(rejection(() => validateCitizenId('110105202506020000'.slice(0, 17) + citizenIdCheckCharacter('11010520250602000'), { now: NOW })).message, /in the future/);
  t.match(rejection(() => validateCitizenId('11010519491231002\u0000', { now: NOW })).message, /U\+0000/);
});

t.test('birth date: leap days, today in China, the 1900 floor', async (t) => {
  const withCheck = (first17: string) => first17 + citizenIdCheckCharacter(first17);
  t.doesNotThrow(() => validateCitizenId(withCheck('11010520000229001'), { now: NOW }), '2000-02-29 exists');
  t.throws(() => validateCitizenId(withCheck('11010520010229001'), { now: NOW }), '2001-02-29 does not');
  t.doesNotThrow(() => validateCitizenId(withCheck('11010519000101001'), { now: NOW }), '1900-01-01 is the floor');
  // 2025-06-01T20:00Z is already 2025-06-02 in Beijing.
  t.doesNotThrow(() => validateCitizenId(withCheck('11010520250602001'), { now: new Date('2025-06-01T20:00:00Z') }));
  t.throws(() => validateCitizenId(withCheck('11010520250602001'), { now: new Date('2025-06-01T12:00:00Z') }));
});

t.test('lower-case x: accepted by validate, upper-cased by normalize', async (t) => {
  t.doesNotThrow(() => validateCitizenId('11010519491231002x', { now: NOW }));
  t.equal(normalizeCitizenId(' 11010519491231002x\n', { now: NOW }), '11010519491231002X');
  t.throws(() => normalizeCitizenId('110105194912310029', { now: NOW }), { code: 'validation-failed' });
});

t.test('every province code is accepted, neighbours are not', async (t) => {
  for (const p of citizenIdProvinceCodes) {
    const first17 = `${p}010519800101001`;
    t.doesNotThrow(() => validateCitizenId(first17 + citizenIdCheckCharacter(first17), { now: NOW }), p);
  }
  for (const p of ['00', '10', '16', '20', '24', '30', '38', '40', '47', '55', '60', '66', '70', '72', '80', '84', '90', '91', '99']) {
    const first17 = `${p}010519800101001`;
    t.throws(() => validateCitizenId(first17 + citizenIdCheckCharacter(first17), { now: NOW }), { code: 'validation-failed' }, p);
  }
});

function randomCitizenId(): string {
  const provinces = [...citizenIdProvinceCodes];
  const year = randomInt(1900, 2025);
  const month = randomInt(1, 13);
  const day = randomInt(1, new Date(Date.UTC(year, month, 0)).getUTCDate() + 1);
  const first17 = provinces[randomInt(provinces.length)] + String(randomInt(10000)).padStart(4, '0')
    + String(year) + String(month).padStart(2, '0') + String(day).padStart(2, '0') + String(randomInt(1000)).padStart(3, '0');
  return first17 + citizenIdCheckCharacter(first17);
}

t.test('citizen ID: every single-character corruption of valid IDs is detected', async (t) => {
  const ids = [...fixtures.validCitizenIds.map((f) => f.id), ...Array.from({ length: 40 }, randomCitizenId)];
  let corruptions = 0;
  let missed: string[] = [];
  for (const id of ids) {
    validateCitizenId(id, { now: NOW });
    for (let i = 0; i < 18; i++) {
      for (const c of '0123456789X') {
        if (c === id[i]) continue;
        const bad = id.slice(0, i) + c + id.slice(i + 1);
        corruptions++;
        try {
          validateCitizenId(bad, { now: NOW });
          missed.push(bad);
        } catch (e) {
          if (!(e instanceof YinxinError) || e.code !== 'validation-failed') throw e;
        }
      }
    }
  }
  t.same(missed, [], `${corruptions} corruptions, none accepted`);
  missed = [];
  for (const id of ids) {
    for (let i = 0; i < 17; i++) {
      if (id[i] === id[i + 1]) continue;
      const swapped = id.slice(0, i) + id[i + 1] + id[i] + id.slice(i + 2);
      try { validateCitizenId(swapped, { now: NOW }); missed.push(swapped); } catch { /* detected */ }
    }
  }
  t.same(missed, [], 'every adjacent transposition is detected too (MOD 11-2 property)');
});

t.test('citizen ID property: random valid IDs pass and round-trip through normalize', async (t) => {
  for (let n = 0; n < 500; n++) {
    const id = randomCitizenId();
    validateCitizenId(id, { now: NOW });
    if (normalizeCitizenId(id.toLowerCase(), { now: NOW }) !== id) t.fail(id);
  }
  t.pass('500 random IDs');
});

t.test('USCC: published examples, and rejection of bad ones from a widely copied sample list', async (t) => {
  for (const { code } of fixtures.validSocialCreditCodes) t.doesNotThrow(() => validateSocialCreditCode(code), code);
  t.equal(socialCreditCheckCharacter('91350100M000100Y4'), '3');
  t.equal(organizationCodeCheckCharacter('M000100Y'), '4');
  for (const bad of fixtures.invalidSocialCreditCodes) {
    const e = rejection(() => validateSocialCreditCode(bad.code));
    t.equal(e.code, 'validation-failed', bad.why);
    t.equal(e.details?.field, 'socialCreditCode');
    t.equal(e.details?.position, bad.position, `${bad.why}: position`);
    t.equal(e.details?.expected, bad.expected, `${bad.why}: expected`);
  }
});

t.test('GB 11714 organization code check: 10 is X, 11 is 0 (GB 11714-1997 s5)', async (t) => {
  // Worked by hand: weights 3,7,9,10,5,8,4,2; letters A=10 .. Z=35; C9 = 11 - (sum mod 11).
  t.equal(organizationCodeCheckCharacter('00000000'), '0', 'sum 0 -> 11 -> 0');
  t.equal(organizationCodeCheckCharacter('10000000'), '8', 'sum 3 -> 8');
  t.equal(organizationCodeCheckCharacter('00000001'), '9', 'sum 2 -> 9');
  t.equal(organizationCodeCheckCharacter('08000000'), 'X', 'sum 56 = 1 mod 11 -> 10 -> X');
  t.equal(organizationCodeCheckCharacter('B0000000'), '0', 'B=11: sum 33 = 0 mod 11 -> 0');
  t.equal(organizationCodeCheckCharacter('M000100Y'), '4', 'M=22, Y=34: 66+5+68 = 139 = 7 mod 11 -> 4');
});

t.test('USCC messages', async (t) => {
  t.equal(rejection(() => validateSocialCreditCode('91350100M000100Y44')).message,
    "social credit code check character at position 18 is '4', expected '3'");
  const lower = rejection(() => validateSocialCreditCode('91350100m000100Y43'));
  t.match(lower.message, /position 9 is 'm' \(lower case is not used\)/);
  t.equal(lower.details?.position, 9);
  t.match(rejection(() => validateSocialCreditCode('91350100M0001O0Y43')).message, /position 14 is 'O' \('O' is excluded/);
  t.match(rejection(() => validateSocialCreditCode('9135A100M000100Y43')).message, /administrative division.*position 5/);
  t.match(rejection(() => validateSocialCreditCode('91350100M000100Y53')).message, /organization code check character at position 17 is '5', expected '4'/);
  t.match(rejection(() => validateSocialCreditCode('91350100M000100Y4')).message, /18 characters long, got 17/);
  t.equal(normalizeSocialCreditCode(' 91350100m000100y43 '), '91350100M000100Y43');
});

function randomSocialCreditCode(): string {
  const pick = (s: string) => s[randomInt(s.length)];
  let org = '';
  for (let i = 0; i < 8; i++) org += pick(USCC_CHARSET);
  let first17 = pick(USCC_CHARSET) + pick(USCC_CHARSET) + String(randomInt(1_000_000)).padStart(6, '0') + org;
  first17 += organizationCodeCheckCharacter(org);
  if (!USCC_CHARSET.includes(first17[16])) throw new Error('unreachable: 0-9 and X are in the charset');
  return first17 + socialCreditCheckCharacter(first17);
}

t.test('USCC: every single-character corruption is detected; random valid codes pass', async (t) => {
  const codes = [...fixtures.validSocialCreditCodes.map((f) => f.code), ...Array.from({ length: 40 }, randomSocialCreditCode)];
  const missed: string[] = [];
  let corruptions = 0;
  for (const code of codes) {
    validateSocialCreditCode(code);
    for (let i = 0; i < 18; i++) {
      for (const c of USCC_CHARSET + 'IOSVZa') {
        if (c === code[i]) continue;
        const bad = code.slice(0, i) + c + code.slice(i + 1);
        corruptions++;
        try { validateSocialCreditCode(bad); missed.push(bad); } catch (e) {
          if (!(e instanceof YinxinError)) throw e;
        }
      }
    }
  }
  t.same(missed, [], `${corruptions} corruptions, none accepted`);
  for (let n = 0; n < 500; n++) validateSocialCreditCode(randomSocialCreditCode());
  t.pass('500 random codes');
});

t.test('non-string and odd input never crashes with a TypeError', async (t) => {
  for (const v of [undefined, null, 42, {}, '', '\u{1F600}'.repeat(9)] as unknown[]) {
    t.throws(() => validateCitizenId(v as string), { code: 'validation-failed' });
    t.throws(() => validateSocialCreditCode(v as string), { code: 'validation-failed' });
  }
});
