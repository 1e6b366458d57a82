/** `yinxin ac`: attribute certificates (roles, clearance, position, department) over /api/v1/attribute-certificates. */
import { writeFileSync } from 'node:fs';
import { api, apiBase, bearerToken, config, fetchFile, flagValue, print, usageError, type Command } from './support.ts';

const P = '/api/v1/attribute-certificates';

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
          const roles = flagValue(flags, 'roles');
          if (!flagValue(flags, 'holder-serial') || !roles) break;
          return print(await api(c, 'POST', `${P}/requests`, {
            holder: { ca: flagValue(flags, 'holder-ca') ?? 'issuing', serial: flagValue(flags, 'holder-serial') },
            roles: roles.split(',').map((r) => r.trim()).filter(Boolean),
            ...(flagValue(flags, 'position') ? { position: flagValue(flags, 'position') } : {}),
            ...(flagValue(flags, 'department') ? { department: flagValue(flags, 'department') } : {}),
            ...(flagValue(flags, 'clearance') ? { clearance: flagValue(flags, 'clearance') } : {}),
            ...(flagValue(flags, 'days') ? { validityDays: Number(flagValue(flags, 'days')) } : {}),
          }));
        }
        case 'requests': return print(await api(c, 'GET', `${P}/requests${flagValue(flags, 'status') ? `?status=${encodeURIComponent(flagValue(flags, 'status')!)}` : ''}`));
        case 'approve': if (!a) break; return print(await api(c, 'POST', `${P}/requests/${encodeURIComponent(a)}/approve`));
        case 'reject': if (!a || !flagValue(flags, 'reason')) break; return print(await api(c, 'POST', `${P}/requests/${encodeURIComponent(a)}/reject`, { reason: flagValue(flags, 'reason') }));
        case 'list': {
          const q = new URLSearchParams();
          if (flagValue(flags, 'holder-ca')) q.set('holderCa', flagValue(flags, 'holder-ca')!);
          if (flagValue(flags, 'holder-serial')) q.set('holderSerial', flagValue(flags, 'holder-serial')!);
          return print(await api(c, 'GET', `${P}${q.size ? `?${q}` : ''}`));
        }
        case 'show': if (!a || !b) break; return print(await api(c, 'GET', `${P}/${encodeURIComponent(a)}/${encodeURIComponent(b)}`));
        case 'download': {
          const out = flagValue(flags, 'out');
          if (!a || !b || !out) break;
          const { body } = await fetchFile(c, 'GET', `${apiBase(c)}${P}/${encodeURIComponent(a)}/${encodeURIComponent(b)}?format=der`, bearerToken());
          writeFileSync(out, body);
          process.stderr.write(`attribute certificate written to ${out}\n`);
          return;
        }
        case 'revoke': if (!a || !b || !flagValue(flags, 'reason')) break; return print(await api(c, 'POST', `${P}/${encodeURIComponent(a)}/${encodeURIComponent(b)}/revoke`, { reason: flagValue(flags, 'reason') }));
      }
      throw usageError(attributeCommands.ac);
    },
  },
};
