/**
 * For tests that need the assembled appliance (real SoftHSM2 token and LMDB store in a temp data
 * directory, every service wired, both apps built but not listening: use inject()).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { loadConfig } from './config.ts';
import { openAppliance, type Appliance } from './context.ts';
import { buildApps } from './server.ts';

export interface TestAppliance {
  appliance: Appliance;
  http: FastifyInstance;
  https: FastifyInstance;
  close(): Promise<void>;
}

export async function openTestAppliance(prefix = 'yx-test-'): Promise<TestAppliance> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const config = loadConfig({ YINXIN_DATA: dir, YINXIN_LOG_LEVEL: 'silent' }, '/');
  const appliance = await openAppliance(config, { logger: pino({ level: 'silent' }) });
  const { http, https } = await buildApps(appliance);
  await Promise.all([http.ready(), https.ready()]);
  return {
    appliance, http, https,
    async close() {
      await Promise.all([http.close(), https.close()]);
      await appliance.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
