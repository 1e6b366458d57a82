/** Local commands on the data directory: start, init, status, backup, restore, audit verify. */
import { existsSync, readFileSync } from 'node:fs';
import { YinxinError } from '../../common/errors.ts';
import { dataPaths } from '../paths.ts';
import { call, config, progress, usageError, type Command } from './support.ts';

export const systemCommands: Record<string, Command> = {
  start: {
    usage: 'yinxin start',
    summary: 'start the appliance (first start creates the data directory, HSM token, keys and administrator)',
    async run() {
      const { startAppliance } = await import('../server.ts');
      const c = config();
      const running = await startAppliance(c);
      const admin = running.appliance.bootstrapAdmin;
      const lines = [
        `yinxin is running (data: ${c.dataDir})`,
        `  public PKI endpoints  ${running.httpUrl}   (/healthz, /metrics, /ocsp, /crl, /ca, /tsa)`,
        `  API, console, IdP     ${running.httpsUrl}  (/api/v1, /api/docs, /admin/)`,
      ];
      if (admin) {
        lines.push('', '  First start: bootstrap administrator created. This password is shown ONCE;',
          '  it must be changed at first sign-in (POST /api/v1/auth/password, or `yinxin passwd`).',
          `    user:     ${admin.username}`, `    password: ${admin.password}`);
      }
      process.stdout.write(`${lines.join('\n')}\n`);
      const stop = () => void running.stop().then(() => process.exit(0), () => process.exit(1));
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
      await new Promise(() => {});
    },
  },
  init: {
    usage: 'yinxin init',
    summary: 'create the data directory, HSM token, keys and bootstrap administrator without starting servers',
    async run() {
      const { openAppliance } = await import('../context.ts');
      const { createLogger } = await import('../server.ts');
      const c = config();
      const a = await openAppliance(c, { logger: createLogger(c) });
      const admin = a.bootstrapAdmin;
      await a.close();
      process.stdout.write(admin
        ? `initialized ${c.dataDir}\nbootstrap administrator: ${admin.username}\none-time password (shown once): ${admin.password}\n`
        : `${c.dataDir} was already initialized\n`);
    },
  },
  status: {
    usage: 'yinxin status',
    summary: 'is the appliance running, and is it healthy',
    async run() {
      const c = config();
      const lock = dataPaths(c.dataDir).lock;
      const pid = existsSync(lock) ? readFileSync(lock, 'utf8').trim() : null;
      process.stdout.write(`data directory: ${c.dataDir}\nconfiguration:  ${c.sources.join(', ')}\n`);
      if (!pid) { process.stdout.write('appliance:      not running\n'); return 3; }
      try {
        const res = await call(c, 'GET', `${c.publicUrl}/healthz`);
        process.stdout.write(`appliance:      running (pid ${pid}), health ${res.status === 200 ? 'ok' : 'FAILING'}\n${JSON.stringify(res.body, null, 2)}\n`);
        return res.status === 200 ? 0 : 1;
      } catch (e) {
        process.stdout.write(`appliance:      pid ${pid} in the lock file, but ${c.publicUrl}/healthz does not answer (${(e as Error).message})\n`);
        return 1;
      }
    },
  },
  backup: {
    usage: 'yinxin backup <file>',
    summary: 'write a consistent snapshot of the data directory (store + HSM token) while the appliance runs',
    async run([file]) {
      if (!file) throw usageError(systemCommands['backup']);
      const c = config();
      const { openLmdbStore } = await import('../../store/lmdb.ts');
      const { createBackup } = await import('../../store/backup.ts');
      const store = openLmdbStore(dataPaths(c.dataDir).store, { readOnly: true });
      try {
        await createBackup({ dataDir: c.dataDir, store, file, onProgress: progress('backup') });
      } finally {
        await store.close();
      }
      process.stderr.write('\n');
      process.stdout.write(`backup written to ${file}\n`);
    },
  },
  restore: {
    usage: 'yinxin restore <file> [--force]',
    summary: 'restore a backup into the data directory (the appliance must be stopped)',
    async run([file], flags) {
      if (!file) throw usageError(systemCommands['restore']);
      const c = config();
      const { lockHolder } = await import('../lock.ts');
      const { restoreBackup } = await import('../../store/backup.ts');
      const holder = lockHolder(dataPaths(c.dataDir).lock);
      if (holder !== null) throw new YinxinError('conflict', `yinxin (pid ${holder}) is running on ${c.dataDir}: stop it before restoring`);
      await restoreBackup({ file, dataDir: c.dataDir, force: flags.force === true, onProgress: progress('restore') });
      process.stderr.write('\n');
      process.stdout.write(`restored ${file} into ${c.dataDir}\n`);
    },
  },
  audit: {
    usage: 'yinxin audit verify',
    summary: 'verify the audit trail: hash chain and signed checkpoints; says where it is broken',
    async run([sub]) {
      if (sub !== 'verify') throw usageError(systemCommands['audit']);
      const c = config();
      const { openLmdbStore } = await import('../../store/lmdb.ts');
      const { verifyAuditTrail } = await import('../../audit/audit.ts');
      const store = openLmdbStore(dataPaths(c.dataDir).store, { readOnly: true });
      try {
        const result = await verifyAuditTrail(store, {});
        process.stdout.write(`${result.ok ? 'audit trail intact' : 'AUDIT TRAIL BROKEN'}: ${result.records} records checked\n`);
        for (const p of result.problems) process.stdout.write(`  seq ${p.seq}: ${p.kind}: ${p.message}\n`);
        return result.ok ? 0 : 1;
      } finally {
        await store.close();
      }
    },
  },
  ocsp: {
    usage: 'yinxin ocsp [--port 8081]',
    summary: 'run an extra OCSP responder process on the same data directory (read-only), e.g. while the appliance restarts',
    async run(_args, flags) {
      const c = config();
      const { startStandaloneResponder } = await import('../../ocsp/index.ts');
      const { openKeyStore } = await import('../context.ts');
      const { createLogger } = await import('../server.ts');
      const logger = createLogger(c);
      const port = typeof flags.port === 'string' ? Number(flags.port) : 8081;
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new YinxinError('bad-request', `--port '${flags.port}' is not a port number`);
      const responder = await startStandaloneResponder({ dataDir: c.dataDir, host: c.host, port, openKeyStore: () => openKeyStore(c, logger), logger });
      process.stdout.write(`yinxin OCSP responder on ${responder.url}/ocsp (data: ${c.dataDir}, read-only)\n`);
      const stop = () => void responder.close().then(() => process.exit(0), () => process.exit(1));
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
      await new Promise(() => {});
    },
  },
};
