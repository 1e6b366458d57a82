/** API commands for operators: sign-in, password, operator accounts, API tokens, raw API calls. */
import { YinxinError } from '../../common/errors.ts';
import { api, config, usageError, type Command } from './support.ts';

export const operatorCommands: Record<string, Command> = {
  login: {
    usage: 'yinxin login <user> [--password <pw>]   (or YINXIN_PASSWORD)',
    summary: 'sign in and print a session token for YINXIN_TOKEN',
    async run([user], flags) {
      if (!user) throw usageError(operatorCommands['login']);
      const password = typeof flags.password === 'string' ? flags.password : process.env.YINXIN_PASSWORD;
      if (!password) throw new YinxinError('bad-request', 'give the password with --password or YINXIN_PASSWORD');
      const c = config();
      const res = await api(c, 'POST', '/api/v1/auth/login', { username: user, password }, false);
      const body = res as { token: string; mustChangePassword: boolean; expiresAt: string };
      process.stdout.write(`${body.token}\n`);
      process.stderr.write(`token valid until ${body.expiresAt}${body.mustChangePassword ? '; change your one-time password first: yinxin passwd' : ''}\nexport YINXIN_TOKEN=<the token above>\n`);
    },
  },
  passwd: {
    usage: 'yinxin passwd   (YINXIN_PASSWORD = current, YINXIN_NEW_PASSWORD = new)',
    summary: 'change your own password',
    async run() {
      const c = config();
      await api(c, 'POST', '/api/v1/auth/password', { currentPassword: process.env.YINXIN_PASSWORD ?? '', newPassword: process.env.YINXIN_NEW_PASSWORD ?? '' });
      process.stdout.write('password changed\n');
    },
  },
  operator: {
    usage: 'yinxin operator list | add <user> --roles r1,r2 [--display-name N] | set <user> [--roles r1,r2] [--disable|--enable] | reset-password <user>',
    summary: 'manage operator accounts (ca-admin)',
    async run([sub, user], flags) {
      const c = config();
      const roles = typeof flags.roles === 'string' ? flags.roles.split(',').map((r) => r.trim()).filter(Boolean) : undefined;
      let out: unknown;
      switch (sub) {
        case 'list': out = await api(c, 'GET', '/api/v1/operators'); break;
        case 'add':
          if (!user || !roles) throw usageError(operatorCommands['operator']);
          out = await api(c, 'POST', '/api/v1/operators', { username: user, roles, ...(typeof flags['display-name'] === 'string' ? { displayName: flags['display-name'] } : {}) });
          break;
        case 'set':
          if (!user) throw usageError(operatorCommands['operator']);
          out = await api(c, 'PATCH', `/api/v1/operators/${encodeURIComponent(user)}`, { ...(roles ? { roles } : {}), ...(flags.disable ? { status: 'disabled' } : flags.enable ? { status: 'active' } : {}) });
          break;
        case 'reset-password':
          if (!user) throw usageError(operatorCommands['operator']);
          out = await api(c, 'POST', `/api/v1/operators/${encodeURIComponent(user)}/reset-password`);
          break;
        default: throw usageError(operatorCommands['operator']);
      }
      process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    },
  },
  token: {
    usage: 'yinxin token create --name N [--roles r1,r2] [--days D] | list | revoke <id>',
    summary: 'API tokens for scripts',
    async run([sub, id], flags) {
      const c = config();
      let out: unknown;
      if (sub === 'create' && typeof flags.name === 'string') {
        out = await api(c, 'POST', '/api/v1/auth/tokens', { name: flags.name, ...(typeof flags.roles === 'string' ? { roles: flags.roles.split(',') } : {}), ...(typeof flags.days === 'string' ? { expiresInDays: Number(flags.days) } : {}) });
      } else if (sub === 'list') out = await api(c, 'GET', '/api/v1/auth/tokens');
      else if (sub === 'revoke' && id) out = await api(c, 'DELETE', `/api/v1/auth/tokens/${encodeURIComponent(id)}`);
      else throw usageError(operatorCommands['token']);
      process.stdout.write(`${JSON.stringify(out ?? { ok: true }, null, 2)}\n`);
    },
  },
  api: {
    usage: 'yinxin api <METHOD> <path> [json-body]',
    summary: 'call any /api/v1 route (see /api/docs) with YINXIN_TOKEN',
    async run([method, path, body]) {
      if (!method || !path) throw usageError(operatorCommands['api']);
      const out = await api(config(), method.toUpperCase(), path, body ? JSON.parse(body) : undefined);
      process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    },
  },
};
