/**
 * CA and RA commands: `yinxin ca`, `request`, `cert`, `recovery`, `pkcs12`, `crl`. Each is a thin
 * client of /api/v1 (ca/api-routes.ts) with YINXIN_TOKEN; `crl fetch` reads the public HTTP port
 * like any relying party. Lists print a table (or the page as JSON with --json) and the cursor of
 * the next page, to pass back with --cursor.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { YinxinError } from '../../common/errors.ts';
import { api, apiBase, bearerToken as token, config, fetchFile as download, flagValue, print, printPage, query, required, usageError, type Command, type Flags, type Row } from './support.ts';

const DEFAULT_CA = 'issuing';

function readText(path: string, what: string): string {
  if (!existsSync(path)) throw new YinxinError('bad-request', `${what} file ${path} does not exist`);
  const bytes = readFileSync(path);
  // DER files go as base64; PEM files as they are.
  return bytes.subarray(0, 11).toString('latin1') === '-----BEGIN ' ? bytes.toString('utf8') : bytes.toString('base64');
}

/** 'dns:www.example.cn,email:a@b.cn,ip:10.0.0.1' (a bare name is a DNS name). */
export function parseSan(text: string): { dns?: string[]; email?: string[]; ip?: string[] } {
  const san: { dns?: string[]; email?: string[]; ip?: string[] } = {};
  for (const raw of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^(dns|email|ip):(.+)$/i.exec(raw);
    const kind = (m ? m[1].toLowerCase() : 'dns') as 'dns' | 'email' | 'ip';
    (san[kind] ??= []).push(m ? m[2] : raw);
  }
  return san;
}

/** Writes a file download to --out, or to stdout when it is text (PEM). */
function save(flags: Flags, what: string, body: Buffer, binary: boolean): void {
  const out = flagValue(flags, 'out');
  if (out) {
    writeFileSync(out, body, { mode: what === 'PKCS#12' ? 0o600 : 0o644 });
    process.stderr.write(`${what} written to ${out} (${body.length} bytes)\n`);
    return;
  }
  if (binary && process.stdout.isTTY) throw new YinxinError('bad-request', `the ${what} is binary: give --out <file>`);
  process.stdout.write(body);
}

function caSpec(flags: Flags): string | undefined {
  const rsa = flagValue(flags, 'rsa');
  const curve = flagValue(flags, 'curve');
  if (rsa && curve) throw new YinxinError('bad-request', 'give --curve or --rsa, not both');
  if (rsa) {
    if (!['2048', '3072', '4096'].includes(rsa)) throw new YinxinError('bad-request', '--rsa takes 2048, 3072 or 4096');
    return `rsa-${rsa}`;
  }
  if (curve) {
    const c = curve.toUpperCase().replace(/^(SECP256R1|PRIME256V1)$/, 'P-256').replace(/^SECP384R1$/, 'P-384');
    if (c !== 'P-256' && c !== 'P-384') throw new YinxinError('bad-request', '--curve takes P-256 or P-384');
    return c === 'P-256' ? 'ec-p256' : 'ec-p384';
  }
  return undefined;
}

const serialPath = (flags: Flags, serial: string) => `/api/v1/certificates/${encodeURIComponent(flagValue(flags, 'ca') ?? DEFAULT_CA)}/${encodeURIComponent(serial)}`;

function noteOneTimePassword(result: { oneTimePassword?: string; pkcs12?: Array<{ role: string; href: string }>; request?: { id: string } }, id: string): void {
  if (!result.oneTimePassword) return;
  process.stderr.write(
    `\nThe key was generated here. One-time PKCS#12 password (shown once, give it to the subject):\n  ${result.oneTimePassword}\n` +
    `Collect the file once: ${(result.pkcs12 ?? [{ role: 'certificate' }]).map((p) => `yinxin pkcs12 collect ${id}${p.role === 'certificate' ? '' : ` --role ${p.role}`} --out <file>.p12`).join('; ')}\n`);
}

export const caCommands: Record<string, Command> = {
  ca: {
    usage: 'yinxin ca list | show <name> | create <name> [--parent root] [--curve P-256|P-384 | --rsa 3072] [--subject DN] [--validity-days N]',
    summary: 'the CA hierarchy; create an issuing CA (ca-admin)',
    async run([sub, name], flags) {
      const c = config();
      switch (sub) {
        case 'list': {
          const { items } = await api(c, 'GET', '/api/v1/cas') as { items: Row[] };
          printPage(flags, { items, next: null }, ['name', 'parent', 'key', 'notAfter', 'subject']);
          return;
        }
        case 'show':
          if (!name) throw usageError(caCommands['ca']);
          print(await api(c, 'GET', `/api/v1/cas/${encodeURIComponent(name)}`));
          return;
        case 'create': {
          if (!name) throw usageError(caCommands['ca']);
          const key = caSpec(flags);
          const days = flagValue(flags, 'validity-days');
          const subject = flagValue(flags, 'subject');
          print(await api(c, 'POST', '/api/v1/cas', {
            name, parent: flagValue(flags, 'parent') ?? 'root', ...(key ? { key } : {}), ...(subject ? { subject } : {}), ...(days ? { validityDays: Number(days) } : {}),
          }));
          return;
        }
        default: throw usageError(caCommands['ca']);
      }
    },
  },

  request: {
    usage: "yinxin request submit --profile P [--ca issuing] (--csr file.pem | --generate ec-p256|ec-p384|rsa-2048|rsa-3072|ed25519 --subject 'CN=...,O=...,C=CN') " +
      '[--san dns:a,email:b,ip:c] [--encryption-csr f | --encryption-generate spec] | list [--status pending] [--requester U] [--limit N] [--cursor C] [--json] ' +
      '| show <id> | approve <id> | reject <id> --reason R',
    summary: 'certificate requests: submit, list, show, approve (a second officer), reject',
    async run([sub, id], flags) {
      const c = config();
      const command = caCommands['request'];
      switch (sub) {
        case 'submit': {
          const profile = required(flags, 'profile', command);
          const csr = flagValue(flags, 'csr');
          const generate = flagValue(flags, 'generate');
          if (!csr === !generate) throw new YinxinError('bad-request', 'give --csr <file> or --generate <key spec>');
          const subject = flagValue(flags, 'subject');
          const san = flagValue(flags, 'san');
          const encCsr = flagValue(flags, 'encryption-csr');
          const encGenerate = flagValue(flags, 'encryption-generate');
          const result = await api(c, 'POST', '/api/v1/requests', {
            ca: flagValue(flags, 'ca') ?? DEFAULT_CA, profile,
            ...(csr ? { csr: readText(csr, 'CSR') } : {}),
            ...(generate ? { generateKey: generate } : {}),
            ...(subject ? { subject } : {}),
            ...(san ? { san: parseSan(san) } : {}),
            ...(encCsr || encGenerate ? { encryption: { ...(encCsr ? { csr: readText(encCsr, 'encryption CSR') } : {}), ...(encGenerate ? { generateKey: encGenerate } : {}) } } : {}),
          }) as { id: string };
          print(result);
          process.stderr.write(`submitted ${result.id}; another RA officer approves it: yinxin request approve ${result.id}\n`);
          return;
        }
        case 'list': {
          const page = await api(c, 'GET', `/api/v1/requests${query({ status: flagValue(flags, 'status'), requester: flagValue(flags, 'requester'), ca: flagValue(flags, 'ca'), profile: flagValue(flags, 'profile'), limit: flagValue(flags, 'limit'), cursor: flagValue(flags, 'cursor') })}`) as { items: Row[]; next: string | null };
          printPage(flags, page, ['id', 'status', 'kind', 'profile', 'requester', 'createdAt', 'subject']);
          return;
        }
        case 'show':
          if (!id) throw usageError(command);
          print(await api(c, 'GET', `/api/v1/requests/${encodeURIComponent(id)}`));
          return;
        case 'approve': {
          if (!id) throw usageError(command);
          const result = await api(c, 'POST', `/api/v1/requests/${encodeURIComponent(id)}/approve`) as { oneTimePassword?: string; request: { id: string; status: string; approvals: unknown[]; approvalsNeeded: number } };
          const { oneTimePassword: _hidden, ...shown } = result;
          print(shown);
          if (result.request.status === 'pending') process.stderr.write(`approval ${result.request.approvals.length} of ${result.request.approvalsNeeded} recorded; another officer must approve\n`);
          noteOneTimePassword(result, id);
          return;
        }
        case 'reject':
          if (!id) throw usageError(command);
          print(await api(c, 'POST', `/api/v1/requests/${encodeURIComponent(id)}/reject`, { reason: required(flags, 'reason', command) }));
          return;
        default: throw usageError(command);
      }
    },
  },

  cert: {
    usage: 'yinxin cert list [--subject CN-prefix] [--identifier ID] [--organization O] [--status good|revoked|hold] [--profile P] [--expires-before ISO] [--expires-after ISO] [--limit N] [--cursor C] [--json] ' +
      '| show <serial> | download <serial> [--format pem|der|chain] [--out f] | revoke <serial> --reason keyCompromise [--invalidity-date ISO] ' +
      '| suspend <serial> | release <serial> | renew <serial> | rekey <serial> --csr f | recover <serial> --reason R   (all take [--ca issuing])',
    summary: 'certificates: search, show, download, revoke, suspend, release, renew, re-key, key recovery',
    async run([sub, serial], flags) {
      const c = config();
      const command = caCommands['cert'];
      if (sub !== 'list' && !serial) throw usageError(command);
      switch (sub) {
        case 'list': {
          const page = await api(c, 'GET', `/api/v1/certificates${query({
            ca: flagValue(flags, 'ca'), subject: flagValue(flags, 'subject'), identifier: flagValue(flags, 'identifier'), organization: flagValue(flags, 'organization'),
            status: flagValue(flags, 'status'), profile: flagValue(flags, 'profile'), expiresBefore: flagValue(flags, 'expires-before'), expiresAfter: flagValue(flags, 'expires-after'),
            limit: flagValue(flags, 'limit'), cursor: flagValue(flags, 'cursor'),
          })}`) as { items: Row[]; next: string | null };
          printPage(flags, page, ['serial', 'status', 'profile', 'notAfter', 'subject']);
          return;
        }
        case 'show': print(await api(c, 'GET', serialPath(flags, serial))); return;
        case 'download': {
          const format = flagValue(flags, 'format') ?? 'pem';
          if (!['pem', 'der', 'chain'].includes(format)) throw new YinxinError('bad-request', '--format takes pem, der or chain');
          const { body } = await download(c, 'GET', `${apiBase(c)}${serialPath(flags, serial)}/download?format=${format}`, token());
          save(flags, 'certificate', body, format === 'der');
          return;
        }
        case 'revoke': {
          const invalidityDate = flagValue(flags, 'invalidity-date');
          print(await api(c, 'POST', `${serialPath(flags, serial)}/revoke`, { reason: required(flags, 'reason', command), ...(invalidityDate ? { invalidityDate } : {}) }));
          return;
        }
        case 'suspend':
        case 'release':
        case 'renew':
          print(await api(c, 'POST', `${serialPath(flags, serial)}/${sub}`));
          return;
        case 'rekey':
          print(await api(c, 'POST', `${serialPath(flags, serial)}/rekey`, { csr: readText(required(flags, 'csr', command), 'CSR') }));
          return;
        case 'recover': {
          const record = await api(c, 'POST', `${serialPath(flags, serial)}/key-recovery`, { reason: required(flags, 'reason', command) }) as { id: string };
          print(record);
          process.stderr.write(`a second RA officer approves it: yinxin recovery approve ${record.id}\n`);
          return;
        }
        default: throw usageError(command);
      }
    },
  },

  recovery: {
    usage: 'yinxin recovery list [--status pending] | show <id> | approve <id>',
    summary: 'key recovery requests; approval by a second officer hands out a one-time PKCS#12',
    async run([sub, id], flags) {
      const c = config();
      const command = caCommands['recovery'];
      switch (sub) {
        case 'list':
          printPage(flags, await api(c, 'GET', `/api/v1/key-recoveries${query({ status: flagValue(flags, 'status'), limit: flagValue(flags, 'limit'), cursor: flagValue(flags, 'cursor') })}`) as { items: Row[]; next: string | null },
            ['id', 'status', 'ca', 'serial', 'requestedBy', 'createdAt', 'reason']);
          return;
        case 'show':
          if (!id) throw usageError(command);
          print(await api(c, 'GET', `/api/v1/key-recoveries/${encodeURIComponent(id)}`));
          return;
        case 'approve': {
          if (!id) throw usageError(command);
          const result = await api(c, 'POST', `/api/v1/key-recoveries/${encodeURIComponent(id)}/approve`) as { recovery: unknown; oneTimePassword: string };
          print(result.recovery);
          noteOneTimePassword({ oneTimePassword: result.oneTimePassword, pkcs12: [{ role: 'certificate', href: '' }] }, id);
          return;
        }
        default: throw usageError(command);
      }
    },
  },

  pkcs12: {
    usage: 'yinxin pkcs12 collect <request-id | recovery-id> --out f.p12 [--role encryption]',
    summary: 'collect the one-time PKCS#12 of a key generated here or recovered (deleted once collected)',
    async run([sub, id], flags) {
      const command = caCommands['pkcs12'];
      if (sub !== 'collect' || !id || !flagValue(flags, 'out')) throw usageError(command);
      const c = config();
      const role = flagValue(flags, 'role');
      const path = id.startsWith('rec-')
        ? `/api/v1/key-recoveries/${encodeURIComponent(id)}/pkcs12`
        : `/api/v1/requests/${encodeURIComponent(id)}/pkcs12${role ? `?role=${encodeURIComponent(role)}` : ''}`;
      const { body } = await download(c, 'POST', `${apiBase(c)}${path}`, token());
      save(flags, 'PKCS#12', body, true);
    },
  },

  crl: {
    usage: 'yinxin crl publish <ca> | show <ca> | fetch <ca> [--delta] --out f.crl',
    summary: 'publish a CRL now (ca-admin), show the current one, or fetch it from the public port',
    async run([sub, ca], flags) {
      const command = caCommands['crl'];
      if (!ca) throw usageError(command);
      const c = config();
      switch (sub) {
        case 'publish': print(await api(c, 'POST', `/api/v1/cas/${encodeURIComponent(ca)}/crls`)); return;
        case 'show': print(await api(c, 'GET', `/api/v1/cas/${encodeURIComponent(ca)}/crls`)); return;
        case 'fetch': {
          const base = c.publicUrl;
          const { body } = await download(c, 'GET', `${base}/crl/${encodeURIComponent(ca)}${flags.delta ? '-delta' : ''}.crl`, undefined);
          save(flags, flags.delta ? 'delta CRL' : 'CRL', body, true);
          return;
        }
        default: throw usageError(command);
      }
    },
  },
};
