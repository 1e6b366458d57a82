/**
 * Seal commands over /api/v1/seals (seal/routes.ts): list, show, request, approve, reject,
 * suspend, resume, revoke, and applying a seal to a PDF (PAdES) or any file (detached CAdES .p7s)
 * with what the API takes: the level (PDF B-T, B-LT, B-LTA; file B-T), a position or a text anchor;
 * `yinxin seal verify` asks the public verification endpoint, as any application would.
 */
import { writeFileSync } from 'node:fs';
import { api, apiBase, bearerToken, config, fetchFile, flagValue, print, readInputFile, usageError, type Command } from './support.ts';

export const sealCommands: Record<string, Command> = {
  seal: {
    usage: [
      'yinxin seal list | show <id> | usage <id>',
      '  | request --organization <unit> --credit-code <USCC> --name <seal name> [--kind official|contract|finance|personal-name]',
      '  | approve <id> | reject <id> | suspend <id> | resume <id> | revoke <id>',
      '  | pdf <id> <in.pdf> [--out <out.pdf>] [--level B-T|B-LT|B-LTA] [--size S] [--reason R] [--location L]',
      '        [--page N] [--x X --y Y | --anchor <text> [--anchor-x DX] [--anchor-y DY]]',
      '  | file <id> <file> [--out <file>.p7s] [--level B-T]',
      '  | verify <sealed.pdf> | verify <file> <file.p7s>',
    ].join('\n'),
    summary: 'electronic seals: registry, sealing PDFs and files, verification',
    async run([sub, id, path], flags) {
      const c = config();
      const seal = (suffix = '') => `/api/v1/seals/${encodeURIComponent(id ?? '')}${suffix}`;
      switch (sub) {
        case 'list': return print(await api(c, 'GET', '/api/v1/seals'));
        case 'show': if (!id) break; return print(await api(c, 'GET', seal()));
        case 'usage': if (!id) break; return print(await api(c, 'GET', seal('/usage')));
        case 'request':
          return print(await api(c, 'POST', '/api/v1/seals', {
            organization: flagValue(flags, 'organization'), creditCode: flagValue(flags, 'credit-code'), name: flagValue(flags, 'name'), kind: flagValue(flags, 'kind') ?? 'official',
          }));
        case 'approve': case 'reject': case 'suspend': case 'resume': case 'revoke':
          if (!id) break;
          return print(await api(c, 'POST', seal(`/${sub}`), {}));
        case 'pdf': {
          if (!id || !path) break;
          // Flag -> query parameter of POST /api/v1/seals/{id}/pdf (seal/routes.ts), which validates them.
          const q = new URLSearchParams();
          for (const [flag, param] of [['page', 'page'], ['x', 'x'], ['y', 'y'], ['size', 'size'], ['reason', 'reason'], ['location', 'location'],
            ['level', 'level'], ['anchor', 'anchor'], ['anchor-x', 'anchorX'], ['anchor-y', 'anchorY']]) {
            const v = flagValue(flags, flag);
            if (v !== undefined) q.set(param, v);
          }
          if ((q.has('anchorX') || q.has('anchorY')) && !q.has('anchor')) throw usageError(sealCommands.seal);
          const { body } = await fetchFile(c, 'POST', `${apiBase(c)}${seal('/pdf')}${q.size ? `?${q}` : ''}`, bearerToken(), { body: readInputFile(path), contentType: 'application/pdf' });
          const out = flagValue(flags, 'out') ?? path.replace(/\.pdf$/i, '') + '.sealed.pdf';
          writeFileSync(out, body);
          process.stderr.write(`sealed PDF (PAdES ${q.get('level') ?? 'B-T'}) written to ${out}\n`);
          return;
        }
        case 'file': {
          if (!id || !path) break;
          const level = flagValue(flags, 'level');
          const { body } = await fetchFile(c, 'POST', `${apiBase(c)}${seal('/file')}${level ? `?${new URLSearchParams({ level })}` : ''}`, bearerToken(),
            { body: readInputFile(path), contentType: 'application/octet-stream' });
          const out = flagValue(flags, 'out') ?? `${path}.p7s`;
          writeFileSync(out, body);
          process.stderr.write(`detached seal (CAdES ${level ?? 'B-T'}) written to ${out}\n`);
          return;
        }
        case 'verify': {
          const target = id;
          if (!target) break;
          const base = process.env.YINXIN_PUBLIC_URL ?? c.publicUrl;
          const upload = path
            ? { body: Buffer.from(JSON.stringify({ file: Buffer.from(readInputFile(target)).toString('base64'), signature: Buffer.from(readInputFile(path)).toString('base64') })), contentType: 'application/json' }
            : { body: readInputFile(target), contentType: 'application/pdf' };
          const { body } = await fetchFile(c, 'POST', `${base}/seal/verify`, undefined, upload);
          const report = JSON.parse(body.toString('utf8')) as { summary?: string; valid?: boolean };
          process.stdout.write(`${report.summary ?? JSON.stringify(report, null, 2)}\n`);
          return report.valid === false ? 1 : 0;
        }
      }
      throw usageError(sealCommands.seal);
    },
  },
};
