/** The data directory layout (docs/data-directory.md). Everything the appliance keeps lives here. */
import { join } from 'node:path';

export function dataPaths(dataDir: string) {
  return {
    root: dataDir,
    store: join(dataDir, 'store'),
    hsm: join(dataDir, 'hsm'),
    /** The user PIN of the embedded token (mode 0600), when YINXIN_PKCS11_PIN is not set. */
    pin: join(dataDir, 'hsm', 'pin'),
    soPin: join(dataDir, 'hsm', 'so-pin'),
    tls: join(dataDir, 'tls'),
    lock: join(dataDir, 'appliance.lock'),
    config: join(dataDir, 'yinxin.json'),
  };
}
