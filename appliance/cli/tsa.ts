/**
 * `yinxin tsa stamp <file>`: asks the running appliance's TSA (POST /tsa) for a token over the file.
 * `yinxin tsa verify <file> <token>`: checks a token offline against the file and a trusted root
 * (the appliance's own root CA by default, fetched from the public port).
 * Tokens are DER TimeStampToken (ContentInfo): `openssl ts -verify -token_in -in <token> ...` reads them.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { YinxinError } from '../../common/errors.ts';
import { derOrPem } from '../../common/pem.ts';
import { requestTimeStamp, verifyTimeStampToken, type TsaHashName } from '../../tsa/index.ts';
import { config, fetchFile, print, usageError, type Command } from './support.ts';

function readFile(path: string, what: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (e) {
    throw new YinxinError('bad-request', `cannot read the ${what} ${path}: ${(e as Error).message}`);
  }
}

export const tsaCommands: Record<string, Command> = {
  tsa: {
    usage: 'yinxin tsa stamp <file> [--out <file>.tst] [--hash SHA-256|SHA-384|SHA-512|SHA3-256] [--policy OID] | verify <file> <token> [--ca root.pem] [--untrusted issuing.pem]',
    summary: 'get an RFC 3161 time stamp for a file, or verify one',
    async run([sub, file, tokenFile], flags) {
      const c = config();
      if (sub === 'stamp' && file) {
        const data = readFile(file, 'file');
        const hash = (typeof flags.hash === 'string' ? flags.hash : 'SHA-256') as TsaHashName;
        const { token } = await requestTimeStamp(`${process.env.YINXIN_PUBLIC_URL ?? c.publicUrl}/tsa`, data, {
          hash, certReq: true, ...(typeof flags.policy === 'string' ? { policy: flags.policy } : {}),
        });
        const out = typeof flags.out === 'string' ? flags.out : `${file}.tst`;
        writeFileSync(out, token);
        process.stderr.write(`time-stamp token written to ${out}\n`);
        return;
      }
      if (sub === 'verify' && file && tokenFile) {
        // By default: trust the appliance's own root, and take its issuing CA as the intermediate.
        const base = process.env.YINXIN_PUBLIC_URL ?? c.publicUrl;
        const certificate = async (option: string, fallback: string) => typeof flags[option] === 'string'
          ? derOrPem(readFile(flags[option] as string, option), 'CERTIFICATE')
          : new Uint8Array((await fetchFile(c, 'GET', `${base}/ca/${fallback}.crt`, undefined)).body);
        const verified = await verifyTimeStampToken(readFile(tokenFile, 'token'), readFile(file, 'file'), {
          trustAnchors: [await certificate('ca', 'root')], intermediates: [await certificate('untrusted', 'issuing')],
        });
        print({ ...verified, nonce: verified.nonce?.toString(), genTime: verified.genTime.toISOString() });
        return;
      }
      throw usageError(tsaCommands.tsa);
    },
  },
};
