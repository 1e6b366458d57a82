/**
 * Single sign-on administration: `yinxin idp users | clients | roles | sessions ...`, a thin client
 * of /api/v1/idp (idp/routes.ts) with YINXIN_TOKEN (idp-admin; auditors may list and show). Lists
 * print a table (or the page as JSON with --json) and the cursor of the next page, for --cursor.
 */
import { YinxinError } from '../../common/errors.ts';
import { api, config, flagValue, print, printPage, query, required, usageError, type Command, type Flags, type Row } from './support.ts';

const USAGE = [
  'yinxin idp users list [--department D] [--limit N] [--cursor C] [--json] | users show <id>',
  '  | users add --identity-code ID --name N [--username U] [--department D] [--position P]   (password: YINXIN_USER_PASSWORD; none = certificate only)',
  '  | users suspend <id> | users resume <id>',
  '  | clients list [--limit N] [--cursor C] [--json] | clients show <client-id> | clients remove <client-id>',
  '  | clients add <client-id> --name N [--redirect-uri u1,u2] [--post-logout-uri u] [--backchannel-logout-uri u] [--grant-types authorization_code,refresh_token,client_credentials]',
  '      [--resource URI] [--cas-service prefix] [--cas-logout-url u] [--require-totp] [--identity-code-allowed]   (prints the client secret once)',
  '  | roles list [--application A] [--json] | roles assignments (--user U | --department D) [--json]',
  '  | roles assign <role-id> (--user U | --department D) [--scope-department D] | roles unassign <assignment-id>',
  '  | sessions list <user-id> [--json] | sessions revoke <session-uid> | sessions revoke-all <user-id>',
].join('\n');

const path = (...parts: string[]) => `/api/v1/idp/${parts.map(encodeURIComponent).join('/')}`;
const list = (value: string | undefined) => value?.split(',').map((s) => s.trim()).filter(Boolean);

type Area = (c: ReturnType<typeof config>, sub: string | undefined, id: string | undefined, flags: Flags) => Promise<void>;

const users: Area = async (c, sub, id, flags) => {
  switch (sub) {
    case 'list': {
      const page = await api(c, 'GET', `${path('users')}${query({ department: flagValue(flags, 'department'), limit: flagValue(flags, 'limit'), after: flagValue(flags, 'cursor') })}`) as { items: Row[]; next?: string };
      printPage(flags, page, ['id', 'username', 'name', 'status', 'departmentId', 'hasTotp']);
      return;
    }
    case 'show': print(await api(c, 'GET', path('users', need(id)))); return;
    case 'add': {
      const username = flagValue(flags, 'username');
      const department = flagValue(flags, 'department');
      const position = flagValue(flags, 'position');
      const password = process.env.YINXIN_USER_PASSWORD;
      print(await api(c, 'POST', path('users'), {
        identityCode: required(flags, 'identity-code', idpCommands.idp), name: required(flags, 'name', idpCommands.idp),
        ...(username ? { username } : {}), ...(department ? { departmentId: department } : {}), ...(position ? { position } : {}), ...(password ? { password } : {}),
      }));
      return;
    }
    // A user no longer active loses every session at once (idp/routes.ts).
    case 'suspend': print(await api(c, 'PATCH', path('users', need(id)), { status: 'suspended' })); return;
    case 'resume': print(await api(c, 'PATCH', path('users', need(id)), { status: 'active' })); return;
    default: throw usageError(idpCommands.idp);
  }
};

const clients: Area = async (c, sub, id, flags) => {
  switch (sub) {
    case 'list': {
      const page = await api(c, 'GET', `${path('applications')}${query({ limit: flagValue(flags, 'limit'), after: flagValue(flags, 'cursor') })}`) as { items: Row[]; next?: string };
      printPage(flags, page, ['clientId', 'status', 'grantTypes', 'name']);
      return;
    }
    case 'show': print(await api(c, 'GET', path('applications', need(id)))); return;
    case 'add': {
      const optional = (name: string) => flagValue(flags, name);
      const redirectUris = list(optional('redirect-uri'));
      const postLogoutRedirectUris = list(optional('post-logout-uri'));
      const casServices = list(optional('cas-service'));
      const grantTypes = list(optional('grant-types'));
      const backchannelLogoutUri = optional('backchannel-logout-uri');
      const resource = optional('resource');
      const casLogoutUrl = optional('cas-logout-url');
      const created = await api(c, 'POST', path('applications'), {
        clientId: need(id), name: required(flags, 'name', idpCommands.idp),
        ...(redirectUris ? { redirectUris } : {}), ...(postLogoutRedirectUris ? { postLogoutRedirectUris } : {}), ...(casServices ? { casServices } : {}),
        ...(grantTypes ? { grantTypes } : {}), ...(backchannelLogoutUri ? { backchannelLogoutUri } : {}), ...(resource ? { resource } : {}),
        ...(casLogoutUrl ? { casLogoutUrl } : {}), ...(flags['require-totp'] ? { requireTotp: true } : {}), ...(flags['identity-code-allowed'] ? { identityCodeAllowed: true } : {}),
      }) as { application: Row; clientSecret: string };
      print(created);
      process.stderr.write(`The client secret above is shown once and cannot be read again: give it to the application's operator now.\n`);
      return;
    }
    // Applications are disabled, not deleted: their tokens stop working at once, and the client id
    // (named in the audit trail) is never given to another application.
    case 'remove': {
      const disabled = await api(c, 'PATCH', path('applications', need(id)), { status: 'disabled' });
      print(disabled);
      process.stderr.write(`application ${id} disabled: it can no longer sign users in or get tokens\n`);
      return;
    }
    default: throw usageError(idpCommands.idp);
  }
};

const roles: Area = async (c, sub, id, flags) => {
  switch (sub) {
    case 'list': {
      const { items } = await api(c, 'GET', `${path('roles')}${query({ application: flagValue(flags, 'application') })}`) as { items: Row[] };
      printPage(flags, { items }, ['id', 'clientId', 'name', 'permissions']);
      return;
    }
    case 'assignments': {
      const { items } = await api(c, 'GET', `${path('assignments')}${query(subject(flags, 'user', 'department'))}`) as { items: Row[] };
      printPage(flags, { items: items.map((a) => ({ ...a, subject: `${(a.subject as { kind: string }).kind}:${(a.subject as { id: string }).id}` })) }, ['id', 'roleId', 'subject', 'scopeDepartmentId']);
      return;
    }
    case 'assign': {
      const who = subject(flags, 'user', 'department');
      const scope = flagValue(flags, 'scope-department');
      print(await api(c, 'POST', path('assignments'), {
        roleId: need(id), subject: who.user ? { kind: 'user', id: who.user } : { kind: 'department', id: who.department }, ...(scope ? { scopeDepartmentId: scope } : {}),
      }));
      return;
    }
    case 'unassign':
      await api(c, 'DELETE', path('assignments', need(id)));
      process.stdout.write(`assignment ${id} removed\n`);
      return;
    default: throw usageError(idpCommands.idp);
  }
};

const sessions: Area = async (c, sub, id, flags) => {
  switch (sub) {
    case 'list': {
      const { items } = await api(c, 'GET', path('users', need(id), 'sessions')) as { items: Row[] };
      printPage(flags, { items }, ['uid', 'acr', 'amr', 'applications', 'expiresAt']);
      return;
    }
    case 'revoke':
      await api(c, 'DELETE', path('sessions', need(id)));
      process.stdout.write(`session ${id} ended; its applications were told (back-channel logout)\n`);
      return;
    case 'revoke-all':
      await api(c, 'DELETE', path('users', need(id), 'sessions'));
      process.stdout.write(`every session of ${id} ended\n`);
      return;
    default: throw usageError(idpCommands.idp);
  }
};

/** Exactly one of two flags (--user or --department). */
function subject(flags: Flags, a: string, b: string): Record<string, string | undefined> {
  const va = flagValue(flags, a);
  const vb = flagValue(flags, b);
  if (!va === !vb) throw new YinxinError('bad-request', `give --${a} or --${b}`);
  return { [a]: va, [b]: vb };
}

function need(id: string | undefined): string {
  if (!id) throw usageError(idpCommands.idp);
  return id;
}

const AREAS: Record<string, Area> = { users, clients, roles, sessions };

export const idpCommands: Record<string, Command> = {
  idp: {
    usage: USAGE,
    summary: 'single sign-on: users, applications (OIDC clients), roles, sessions (idp-admin)',
    async run([area, sub, id], flags) {
      const run = area ? AREAS[area] : undefined;
      if (!run) throw usageError(idpCommands.idp);
      await run(config(), sub, id, flags);
    },
  },
};
