/** `yinxin ac`: attribute certificates (roles, clearance, position, department) over /api/v1/attribute-certificates. */
import { writeFileSync } from 'node:fs';
import { api, apiBase, bearerToken, config, fetchFile, print, usageError, type Command, type Flags } from './support.ts';

const P = '/api/v1/attribute-certificates';

function str(flags: Flags, name: string): string | undefined {
  const v = flags[name];
  return typeof v === 'string' ? v : undefined;
}

export const attributeCommands: Record<string, Command> = {
  ac: {
    usage: [
      'yinxin ac request --holder-ca issuing --holder-serial <hex> --roles r1,r2 [--position P] [--department D] [--clearance unmarked|unclassified|restricted|confidential|secret|topSecret] [--days N]',
      '  | requests [--status pending] | approve <request-id> | reject <request-id> --reason R',
      '  | list [--holder-ca C --holder-serial S] | show <aa> <serial> | download <aa> <serial> --out f.ac | revoke <aa> <serial> --reason privilegeWithdrawn',
    ].join('\n'),
    summary: 'attribute certificates binding roles and positions to people (RFC 5755)',
    async run([sub, a, b], flags) {
      const c = config();
      switch (sub) {
        case 'request': {
          const roles = str(flags, 'roles');
          if (!str(flags, 'holder-serial') || !roles) break;
          return print(await api(c, 'POST', `${P}/requests`, {
            holder: { ca: str(flags, 'holder-ca') ?? 'issuing', serial: str(flags, 'holder-serial') },
            roles: roles.split(',').map((r) => r.trim()).filter(Boolean),
            ...(str(flags, 'position') ? { position: str(flags, 'position') } : {}),
            ...(str(flags, 'department') ? { department: str(flags, 'department') } : {}),
            ...(str(flags, 'clearance') ? { clearance: str(flags, 'clearance') } : {}),
            ...(str(flags, 'days') ? { validityDays: Number(str(flags, 'days')) } : {}),
          }));
        }
        case 'requests': return print(await api(c, 'GET', `${P}/requests${str(flags, 'status') ? `?status=${encodeURIComponent(str(flags, 'status')!)}` : ''}`));
        case 'approve': if (!a) break; return print(await api(c, 'POST', `${P}/requests/${encodeURIComponent(a)}/approve`));
        case 'reject': if (!a || !str(flags, 'reason')) break; return print(await api(c, 'POST', `${P}/requests/${encodeURIComponent(a)}/reject`, { reason: str(flags, 'reason') }));
        case 'list': {
          const q = new URLSearchParams();
          if (str(flags, 'holder-ca')) q.set('holderCa', str(flags, 'holder-ca')!);
          if (str(flags, 'holder-serial')) q.set('holderSerial', str(flags, 'holder-serial')!);
          return print(await api(c, 'GET', `${P}${q.size ? `?${q}` : ''}`));
        }
        case 'show': if (!a || !b) break; return print(await api(c, 'GET', `${P}/${encodeURIComponent(a)}/${encodeURIComponent(b)}`));
        case 'download': {
          const out = str(flags, 'out');
          if (!a || !b || !out) break;
          const { body } = await fetchFile(c, 'GET', `${apiBase(c)}${P}/${encodeURIComponent(a)}/${encodeURIComponent(b)}?format=der`, bearerToken());
          writeFileSync(out, body);
          process.stderr.write(`attribute certificate written to ${out}\n`);
          return;
        }
        case 'revoke': if (!a || !b || !str(flags, 'reason')) break; return print(await api(c, 'POST', `${P}/${encodeURIComponent(a)}/${encodeURIComponent(b)}/revoke`, { reason: str(flags, 'reason') }));
      }
      throw usageError(attributeCommands.ac);
    },
  },
};
