/**
 * The `yinxin` command line. Local commands work on the data directory (init, start, status,
 * backup, restore, audit verify); API commands talk to the running appliance over HTTPS with a
 * bearer token from YINXIN_TOKEN (get one with `yinxin login`). Each area's commands live in
 * appliance/cli/<area>.ts.
 */
import { isYinxinError } from '../common/errors.ts';
import { caCommands } from './cli/ca.ts';
import { idpCommands } from './cli/idp.ts';
import { operatorCommands } from './cli/operators.ts';
import { parseArgs, type Command } from './cli/support.ts';
import { attributeCommands } from './cli/attributes.ts';
import { sealCommands } from './cli/seal.ts';
import { systemCommands } from './cli/system.ts';
import { tsaCommands } from './cli/tsa.ts';

const commands: Record<string, Command> = { ...systemCommands, ...operatorCommands, ...caCommands, ...attributeCommands, ...tsaCommands, ...sealCommands, ...idpCommands };

export async function main(argv: string[]): Promise<number> {
  const { words, flags } = parseArgs(argv);
  const [name, ...args] = words;
  if (!name || name === 'help' || flags.help) {
    const width = Math.max(...Object.keys(commands).map((k) => k.length));
    process.stdout.write(`yinxin — PKI, identity and security services appliance\n\n${Object.entries(commands).map(([k, c]) => `  ${k.padEnd(width)}  ${c.summary}\n  ${' '.repeat(width)}  ${c.usage.replaceAll('\n', `\n  ${' '.repeat(width)}  `)}`).join('\n')}\n\nConfiguration: YINXIN_* environment variables (README.md).\n`);
    return name ? 0 : 2;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`yinxin: unknown command '${name}' (yinxin help lists them)\n`);
    return 2;
  }
  try {
    return (await command.run(args, flags)) ?? 0;
  } catch (e) {
    if (isYinxinError(e)) {
      process.stderr.write(`yinxin ${name}: ${e.message}\n`);
      return e.code === 'bad-request' ? 2 : 1;
    }
    process.stderr.write(`yinxin ${name}: unexpected error: ${(e as Error).stack ?? e}\n`);
    return 1;
  }
}

if (import.meta.main) {
  process.exitCode = await main(process.argv.slice(2));
}
