/**
 * `yinxin tsa stamp <file>`: asks the running appliance's TSA (POST /tsa) for a token over the file.
 * `yinxin tsa verify <file> <token>`: checks a token offline against the file and a trusted root
 * (the appliance's own root CA by default, fetched from the public port).
 * Tokens are DER TimeStampToken (ContentInfo): `openssl ts -verify -token_in -in <token> ...` reads them.
 */
import { writeFileSync } from 'node:fs';
import { derOrPem } from '../../common/pem.ts';
import { requestTimeStamp, verifyTimeStampToken, type TsaHashName } from '../../tsa/index.ts';
import { config, fetchFile, flagValue, print, readInputFile, usageError, type Command } from './support.ts';

export const tsaCommands: Record<string, Command> = {
  tsa: {
    usage: 'yinxin tsa stamp <file> [--out <file>.tst] [--hash SHA-256|SHA-384|SHA-512|SHA3-256] [--policy OID] | verify <file> <token> [--ca root.pem] [--untrusted issuing.pem]',
    summary: 'get an RFC 3161 time stamp for a file, or verify one',
    async run([sub, file, tokenFile], flags) {
      const c = config();
      if (sub === 'stamp' && file) {
        const data = readInputFile(file, 'file');
        const hash = (flagValue(flags, 'hash') ?? 'SHA-256') as TsaHashName;
        const { token } = await requestTimeStamp(`${process.env.YINXIN_PUBLIC_URL ?? c.publicUrl}/tsa`, data, {
          hash, certReq: true, ...(flagValue(flags, 'policy') ? { policy: flagValue(flags, 'policy') } : {}),
        });
        const out = flagValue(flags, 'out') ?? `${file}.tst`;
        writeFileSync(out, token);
        process.stderr.write(`time-stamp token written to ${out}\n`);
        return;
      }
      if (sub === 'verify' && file && tokenFile) {
        // By default: trust the appliance's own root, and take its issuing CA as the intermediate.
        const base = process.env.YINXIN_PUBLIC_URL ?? c.publicUrl;
        const certificate = async (option: string, fallback: string) => flagValue(flags, option) !== undefined
          ? derOrPem(readInputFile(flagValue(flags, option)!, option), 'CERTIFICATE')
          : new Uint8Array((await fetchFile(c, 'GET', `${base}/ca/${fallback}.crt`, undefined)).body);
        const verified = await verifyTimeStampToken(readInputFile(tokenFile, 'token'), readInputFile(file, 'file'), {
          trustAnchors: [await certificate('ca', 'root')], intermediates: [await certificate('untrusted', 'issuing')],
        });
        print({ ...verified, nonce: verified.nonce?.toString(), genTime: verified.genTime.toISOString() });
        return;
      }
      throw usageError(tsaCommands.tsa);
    },
  },
};
