/**
 * Chinese identity numbers carried in certificate subjects:
 *   - the resident identity number of a citizen (GB 11643-1999), 18 characters;
 *   - the unified social credit code of an organization (GB 32100-2015), 18 characters,
 *     whose characters 9-17 are a GB 11714-1997 organization code with its own check character.
 * Every rejection is a YinxinError 'validation-failed' whose message names the wrong part and,
 * for a check character, the character expected; `details` carries { field, position, expected, found }
 * (positions are 1-based, as the standards count them). See docs/ca-identifiers.md.
 */
import { YinxinError } from '../common/errors.ts';

// ---------------------------------------------------------------------------------------------
// Citizen identity number, GB 11643-1999
// ---------------------------------------------------------------------------------------------

/** ISO 7064 MOD 11-2 weights: 2^(18-i) mod 11 for i = 1..17. */
const CITIZEN_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2] as const;
/** Check character indexed by (weighted sum mod 11). */
const CITIZEN_CHECK_CHARS = '10X98765432';

/**
 * First two digits (province level, GB/T 2260) accepted in a resident identity number, plus the
 * codes the 2018 residence permits for Hong Kong (81), Macao (82) and Taiwan (83) residents use.
 */
export const citizenIdProvinceCodes: ReadonlySet<string> = new Set([
  '11', '12', '13', '14', '15', // Beijing, Tianjin, Hebei, Shanxi, Inner Mongolia
  '21', '22', '23', // Liaoning, Jilin, Heilongjiang
  '31', '32', '33', '34', '35', '36', '37', // Shanghai, Jiangsu, Zhejiang, Anhui, Fujian, Jiangxi, Shandong
  '41', '42', '43', '44', '45', '46', // Henan, Hubei, Hunan, Guangdong, Guangxi, Hainan
  '50', '51', '52', '53', '54', // Chongqing, Sichuan, Guizhou, Yunnan, Tibet
  '61', '62', '63', '64', '65', // Shaanxi, Gansu, Qinghai, Ningxia, Xinjiang
  '71', // Taiwan (GB/T 2260)
  '81', '82', '83', // residence permits: Hong Kong, Macao, Taiwan residents
]);

const EARLIEST_BIRTH_YEAR = 1900;

function fail(field: string, message: string, facts: { position?: number; expected?: string; found?: string } = {}): never {
  throw new YinxinError('validation-failed', message, { field, ...facts });
}

function describeChar(c: string): string {
  const code = c.codePointAt(0) ?? 0;
  return code < 0x20 || code === 0x7f ? `U+${code.toString(16).toUpperCase().padStart(4, '0')}` : `'${c}'`;
}

function checkLength(field: string, label: string, value: string, expected: number): void {
  if (typeof value !== 'string') fail(field, `${label} must be a string`);
  const length = [...value].length;
  if (length !== expected) {
    fail(field, `${label} must be ${expected} characters long, got ${length}`, { expected: String(expected), found: String(length) });
  }
}

/**
 * The check character (position 18) for the first 17 digits of a resident identity number:
 * ISO 7064 MOD 11-2, GB 11643-1999 s5.2. Throws 'validation-failed' if `first17` is not 17 digits.
 */
export function citizenIdCheckCharacter(first17: string): string {
  checkLength('citizenId', 'the first part of a citizen ID', first17, 17);
  let sum = 0;
  for (let i = 0; i < 17; i++) {
    const c = first17[i];
    if (c < '0' || c > '9') {
      fail('citizenId', `citizen ID character at position ${i + 1} is ${describeChar(c)}, expected a digit`, { position: i + 1, expected: '0-9', found: c });
    }
    sum += (c.charCodeAt(0) - 48) * CITIZEN_WEIGHTS[i];
  }
  return CITIZEN_CHECK_CHARS[sum % 11];
}

/**
 * Validates an 18-character resident identity number (GB 11643-1999): 17 digits, a check
 * character (digit or 'X'; lower-case 'x' is accepted, see normalizeCitizenId), a province code
 * in citizenIdProvinceCodes, and a birth date (positions 7-14, YYYYMMDD) that is a real calendar
 * day between 1900-01-01 and `now` (UTC+8 calendar day, the issuing country's).
 * The 15-digit numbers of the 1984 first-generation cards are refused: they expired in 2013.
 */
export function validateCitizenId(id: string, options: { now?: Date } = {}): void {
  checkLength('citizenId', 'citizen ID', id, 18);
  for (let i = 0; i < 17; i++) {
    const c = id[i];
    if (c < '0' || c > '9') {
      fail('citizenId', `citizen ID character at position ${i + 1} is ${describeChar(c)}, expected a digit`, { position: i + 1, expected: '0-9', found: c });
    }
  }
  const last = id[17];
  if (!/^[0-9Xx]$/.test(last)) {
    fail('citizenId', `citizen ID character at position 18 is ${describeChar(last)}, expected a digit or 'X'`, { position: 18, expected: '0-9 or X', found: last });
  }

  const province = id.slice(0, 2);
  if (!citizenIdProvinceCodes.has(province)) {
    fail('citizenId', `citizen ID region code '${id.slice(0, 6)}' starts with '${province}', which is not a province code (GB/T 2260)`, { position: 1, found: province });
  }

  checkBirthDate(id.slice(6, 14), options.now ?? new Date());

  const expected = citizenIdCheckCharacter(id.slice(0, 17));
  if (last.toUpperCase() !== expected) {
    fail('citizenId', `citizen ID check character at position 18 is '${last}', expected '${expected}'`, { position: 18, expected, found: last });
  }
}

function checkBirthDate(yyyymmdd: string, now: Date): void {
  const year = Number(yyyymmdd.slice(0, 4));
  const month = Number(yyyymmdd.slice(4, 6));
  const day = Number(yyyymmdd.slice(6, 8));
  const facts = { position: 7, found: yyyymmdd };
  if (month < 1 || month > 12) fail('citizenId', `citizen ID birth date '${yyyymmdd}' (positions 7-14) has month ${month}`, facts);
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (day < 1 || day > daysInMonth) {
    fail('citizenId', `citizen ID birth date '${yyyymmdd}' (positions 7-14) is not a calendar date: ${year}-${String(month).padStart(2, '0')} has ${daysInMonth} days`, facts);
  }
  if (year < EARLIEST_BIRTH_YEAR) fail('citizenId', `citizen ID birth date '${yyyymmdd}' (positions 7-14) is before ${EARLIEST_BIRTH_YEAR}`, facts);
  // Compare calendar days in China Standard Time (UTC+8), where the number was issued.
  const today = new Date(now.getTime() + 8 * 3600_000);
  const todayKey = today.getUTCFullYear() * 10000 + (today.getUTCMonth() + 1) * 100 + today.getUTCDate();
  if (year * 10000 + month * 100 + day > todayKey) {
    fail('citizenId', `citizen ID birth date '${yyyymmdd}' (positions 7-14) is in the future`, facts);
  }
}

/**
 * The canonical form of a resident identity number: surrounding white space removed and a
 * lower-case check character 'x' upper-cased. Validates it (same errors as validateCitizenId)
 * and returns it; store and compare only this form.
 */
export function normalizeCitizenId(id: string, options: { now?: Date } = {}): string {
  if (typeof id !== 'string') fail('citizenId', 'citizen ID must be a string');
  const canonical = id.trim().toUpperCase();
  validateCitizenId(canonical, options);
  return canonical;
}

// ---------------------------------------------------------------------------------------------
// Unified social credit code, GB 32100-2015 (with the GB 11714-1997 organization code inside)
// ---------------------------------------------------------------------------------------------

/** The 31 characters of GB 32100-2015 in value order (0-30): no I, O, S, V, Z. */
const USCC_CHARSET = '0123456789ABCDEFGHJKLMNPQRTUWXY';
const USCC_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28] as const;
/** GB 11714-1997 weights for the 8 body characters of an organization code. */
const ORG_CODE_WEIGHTS = [3, 7, 9, 10, 5, 8, 4, 2] as const;

function usccValue(c: string, position: number): number {
  const v = USCC_CHARSET.indexOf(c);
  if (c.length !== 1 || v < 0) {
    const hint = /^[IOSVZ]$/.test(c) ? ` ('${c}' is excluded to avoid confusion)` : /^[a-z]$/.test(c) ? ' (lower case is not used)' : '';
    fail('socialCreditCode', `social credit code character at position ${position} is ${describeChar(c)}${hint}, expected one of 0-9 A-H J-N P-R T-U W-Y`, { position, expected: USCC_CHARSET, found: c });
  }
  return v;
}

/**
 * The check character (position 18) of a unified social credit code for its first 17 characters:
 * C18 = 31 - (sum of value x weight mod 31), 31 meaning 0 (GB 32100-2015 s4.3, after GB/T 17710).
 */
export function socialCreditCheckCharacter(first17: string): string {
  checkLength('socialCreditCode', 'the first part of a social credit code', first17, 17);
  let sum = 0;
  for (let i = 0; i < 17; i++) sum += usccValue(first17[i], i + 1) * USCC_WEIGHTS[i];
  return USCC_CHARSET[(31 - (sum % 31)) % 31];
}

/**
 * The check character of a GB 11714-1997 organization code for its 8 body characters (digits or
 * upper-case letters, A=10 ... Z=35): C9 = 11 - (weighted sum mod 11), 10 written 'X', 11 written '0'.
 */
export function organizationCodeCheckCharacter(first8: string, positionOffset = 0): string {
  checkLength('socialCreditCode', 'an organization code body', first8, 8);
  let sum = 0;
  for (let i = 0; i < 8; i++) {
    const c = first8[i];
    const v = c >= '0' && c <= '9' ? c.charCodeAt(0) - 48 : c >= 'A' && c <= 'Z' ? c.charCodeAt(0) - 55 : -1;
    if (v < 0) {
      fail('socialCreditCode', `organization code character at position ${positionOffset + i + 1} is ${describeChar(c)}, expected a digit or an upper-case letter`, { position: positionOffset + i + 1, found: c });
    }
    sum += v * ORG_CODE_WEIGHTS[i];
  }
  const c9 = 11 - (sum % 11);
  return c9 === 10 ? 'X' : c9 === 11 ? '0' : String(c9);
}

/**
 * Validates an 18-character unified social credit code (GB 32100-2015):
 *   1     registration authority code    } any charset character (the lists grow by notice,
 *   2     organization type code          } so they are not enumerated here)
 *   3-8   administrative division of the registering authority: 6 digits (GB/T 2260)
 *   9-17  organization code (GB 11714-1997): 8 characters + its check character at 17
 *   18    check character, mod 31
 * Only upper case is accepted: the standard has no lower case and 'x' is not in the charset.
 */
export function validateSocialCreditCode(code: string): void {
  checkLength('socialCreditCode', 'social credit code', code, 18);
  for (let i = 0; i < 18; i++) usccValue(code[i], i + 1);
  for (let i = 2; i < 8; i++) {
    const c = code[i];
    if (c < '0' || c > '9') {
      fail('socialCreditCode', `social credit code administrative division (positions 3-8) '${code.slice(2, 8)}' has ${describeChar(c)} at position ${i + 1}, expected a digit`, { position: i + 1, expected: '0-9', found: c });
    }
  }
  const orgExpected = organizationCodeCheckCharacter(code.slice(8, 16), 8);
  if (code[16] !== orgExpected) {
    fail('socialCreditCode', `social credit code organization code check character at position 17 is '${code[16]}', expected '${orgExpected}' (GB 11714 check of '${code.slice(8, 16)}')`, { position: 17, expected: orgExpected, found: code[16] });
  }
  const expected = socialCreditCheckCharacter(code.slice(0, 17));
  if (code[17] !== expected) {
    fail('socialCreditCode', `social credit code check character at position 18 is '${code[17]}', expected '${expected}'`, { position: 18, expected, found: code[17] });
  }
}

/** Trims surrounding white space and upper-cases, validates, and returns the canonical code. */
export function normalizeSocialCreditCode(code: string): string {
  if (typeof code !== 'string') fail('socialCreditCode', 'social credit code must be a string');
  const canonical = code.trim().toUpperCase();
  validateSocialCreditCode(canonical);
  return canonical;
}
