/**
 * Backup and restore of a whole data directory: a consistent LMDB snapshot of the store, the HSM
 * token directory (<dataDir>/hsm: SoftHSM2's files and the PIN files) and every other small file
 * (configuration, TLS material), with their modes. Layout: docs/data-directory.md.
 *
 * Container: a POSIX ustar archive (IEEE Std 1003.1, pax "ustar" format), written and read here
 * with node's file handles rather than through the system `tar`:
 *   - any tar lists and extracts it (`tar tvf backup.tar`), so operators and auditors can look
 *     inside with standard tools, and no special format outlives this code;
 *   - writing it ourselves lets the manifest come first with each member's SHA-256, reports
 *     progress, and does not depend on which tar (GNU, busybox, bsdtar) a host has or how it
 *     treats modes and owners; reading it ourselves lets restore refuse unsafe paths (`..`,
 *     absolute, links) and verify every byte before anything in the data directory is touched.
 * Sizes of 8 GiB and more use the base-256 size field (GNU and bsdtar read it).
 *
 * Archive members, in order:
 *   MANIFEST.json     { format: 'yinxin-backup', formatVersion: 1, createdAt, dataDirMode,
 *                       members: [{ path, type: 'file' | 'directory', mode, size, sha256? }] }
 *   store/            directory
 *   store/data.mdb    the LMDB snapshot (compacted; opened as a store directory's data.mdb)
 *   ...               every other file and directory under the data directory, in path order
 * Left out: LMDB's lock file, lock files (*.lock), sockets and symbolic links.
 *
 * The archive is not encrypted: the HSM token files are encrypted by SoftHSM2 under the PIN, but
 * the PIN file rides along when the PIN is kept in the data directory. Keep backups as carefully
 * as the appliance itself.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { chmod, lstat, mkdir, mkdtemp, open, readdir, rename, rm, rmdir, stat, utimes, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, posix, resolve, sep } from 'node:path';
import { systemClock, type Clock } from '../common/clock.ts';
import { YinxinError } from '../common/errors.ts';
import { openLmdbStore } from './lmdb.ts';
import type { Store } from './store.ts';

export const BACKUP_FORMAT = 'yinxin-backup';
export const BACKUP_FORMAT_VERSION = 1;
const MANIFEST_NAME = 'MANIFEST.json';
const STORE_DIR = 'store';
const SNAPSHOT_MEMBER = 'store/data.mdb';
const BLOCK = 512;
const CHUNK = 1 << 20;
const MAX_MANIFEST = 16 << 20;

export interface BackupMember {
  /** Relative to the data directory, '/'-separated. */
  path: string;
  type: 'file' | 'directory';
  /** Permission bits (e.g. 0o600). */
  mode: number;
  /** Bytes (0 for a directory). */
  size: number;
  /** Hex SHA-256 of the content (files only). */
  sha256?: string;
}

export interface BackupManifest {
  format: typeof BACKUP_FORMAT;
  formatVersion: number;
  /** ISO 8601. */
  createdAt: string;
  /** Permission bits of the data directory itself. */
  dataDirMode: number;
  members: BackupMember[];
}

export type ProgressCallback = (bytesDone: number, bytesTotal: number) => void;

export interface CreateBackupOptions {
  dataDir: string;
  /** The open store of that data directory (its snapshot is taken while writers go on). */
  store: Store;
  /** The archive to write; written beside as a temporary file and renamed when complete. */
  file: string;
  /** Bytes hashed and written so far, out of the total to hash and write. */
  onProgress?: ProgressCallback;
  clock?: Clock;
}

export interface RestoreBackupOptions {
  file: string;
  dataDir: string;
  /** Replace a non-empty data directory (it is moved aside, not deleted). */
  force?: boolean;
  /** Bytes of the archive read so far, out of its size. */
  onProgress?: ProgressCallback;
}

export interface RestoreResult {
  manifest: BackupManifest;
  /** Where the previous data directory was moved when `force` replaced a non-empty one. */
  previousDataDir?: string;
}

// ---- create ---------------------------------------------------------------------------------------------

export async function createBackup(options: CreateBackupOptions): Promise<{ file: string; manifest: BackupManifest; bytes: number }> {
  const dataDir = resolve(options.dataDir);
  const file = resolve(options.file);
  const store = options.store;
  const clock = options.clock ?? systemClock;
  const rootStat = await stat(dataDir).catch((e) => { throw new YinxinError('not-found', `the data directory ${dataDir} cannot be read: ${e.message}`, undefined, { cause: e }); });
  const work = await mkdtemp(join(dirname(file), `.${basename(file)}.`));
  try {
    const snapshot = join(work, 'data.mdb');
    await store.backup(snapshot);

    const storeDirMode = await stat(join(dataDir, STORE_DIR)).then((s) => s.mode & 0o7777, () => 0o700);
    const storeFileMode = await stat(join(dataDir, STORE_DIR, 'data.mdb')).then((s) => s.mode & 0o7777, () => 0o600);
    const sources = new Map<string, string>([[SNAPSHOT_MEMBER, snapshot]]);
    const members: BackupMember[] = [
      { path: STORE_DIR, type: 'directory', mode: storeDirMode, size: 0 },
      { path: SNAPSHOT_MEMBER, type: 'file', mode: storeFileMode, size: (await stat(snapshot)).size },
    ];
    for await (const entry of walk(dataDir, '')) {
      if (entry.path === STORE_DIR || entry.path.startsWith(`${STORE_DIR}/`)) continue;
      // The archive itself may be written inside the data directory.
      if (entry.absolute === file || entry.absolute === work || entry.absolute.startsWith(work + sep)) continue;
      if (entry.type === 'file' && entry.path.endsWith('.lock')) continue;
      members.push({ path: entry.path, type: entry.type, mode: entry.mode, size: entry.size });
      if (entry.type === 'file') sources.set(entry.path, entry.absolute);
    }

    const payload = members.reduce((n, m) => n + m.size, 0);
    const total = payload * 2;
    let done = 0;
    const progress = (n: number) => {
      done += n;
      options.onProgress?.(done, total);
    };
    options.onProgress?.(0, total);
    for (const m of members) {
      if (m.type === 'file') m.sha256 = await hashFile(sources.get(m.path)!, m.size, progress);
    }
    const manifest: BackupManifest = {
      format: BACKUP_FORMAT,
      formatVersion: BACKUP_FORMAT_VERSION,
      createdAt: clock.now().toISOString(),
      dataDirMode: rootStat.mode & 0o7777,
      members,
    };

    const partial = join(work, 'archive.partial');
    const out = await open(partial, 'wx', 0o600);
    let bytes = 0;
    try {
      const write = async (data: Uint8Array) => {
        await out.write(data);
        bytes += data.length;
      };
      const manifestBytes = Buffer.from(JSON.stringify(manifest, null, 2) + '\n', 'utf8');
      const mtime = Math.floor(clock.now().getTime() / 1000);
      await write(tarHeader({ path: MANIFEST_NAME, type: 'file', mode: 0o600, size: manifestBytes.length, mtime }));
      await write(manifestBytes);
      await write(padding(manifestBytes.length));
      for (const m of members) {
        const source = sources.get(m.path);
        const sourceMtime = source ? Math.floor((await stat(source)).mtimeMs / 1000) : mtime;
        await write(tarHeader({ path: m.path, type: m.type, mode: m.mode, size: m.size, mtime: sourceMtime }));
        if (m.type !== 'file') continue;
        const hash = createHash('sha256');
        await readFileChunks(source!, m.size, async (chunk) => {
          hash.update(chunk);
          await write(chunk);
          progress(chunk.length);
        });
        if (hash.digest('hex') !== m.sha256) {
          throw new YinxinError('conflict', `${m.path} changed while the backup was being written; run the backup again`);
        }
        await write(padding(m.size));
      }
      await write(Buffer.alloc(BLOCK * 2));
      await out.sync();
    } finally {
      await out.close();
    }
    await rename(partial, file);
    await syncDirectory(dirname(file));
    return { file, manifest, bytes };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

interface WalkEntry {
  path: string;
  absolute: string;
  type: 'file' | 'directory';
  mode: number;
  size: number;
}

/** Files and directories under `dir`, depth first, names in code-unit order; links and specials skipped. */
async function* walk(root: string, relative: string): AsyncGenerator<WalkEntry> {
  const names = (await readdir(join(root, relative))).sort();
  for (const name of names) {
    const path = relative ? `${relative}/${name}` : name;
    const absolute = join(root, ...path.split('/'));
    const s = await lstat(absolute);
    if (s.isDirectory()) {
      yield { path, absolute, type: 'directory', mode: s.mode & 0o7777, size: 0 };
      yield* walk(root, path);
    } else if (s.isFile()) {
      yield { path, absolute, type: 'file', mode: s.mode & 0o7777, size: s.size };
    }
  }
}

async function readFileChunks(file: string, size: number, onChunk: (chunk: Uint8Array) => Promise<void> | void): Promise<void> {
  const fh = await open(file, 'r');
  try {
    const buffer = Buffer.alloc(Math.min(CHUNK, Math.max(size, 1)));
    let position = 0;
    while (position < size) {
      const { bytesRead } = await fh.read(buffer, 0, Math.min(buffer.length, size - position), position);
      if (bytesRead === 0) throw new YinxinError('conflict', `${file} shrank while the backup was being written; run the backup again`);
      await onChunk(buffer.subarray(0, bytesRead));
      position += bytesRead;
    }
  } finally {
    await fh.close();
  }
}

async function hashFile(file: string, size: number, progress: (n: number) => void): Promise<string> {
  const hash = createHash('sha256');
  await readFileChunks(file, size, (chunk) => {
    hash.update(chunk);
    progress(chunk.length);
  });
  return hash.digest('hex');
}

async function syncDirectory(dir: string): Promise<void> {
  const fh = await open(dir, fsConstants.O_RDONLY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

// ---- ustar --------------------------------------------------------------------------------------------

function padding(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);
}

function writeOctal(header: Buffer, offset: number, width: number, value: number): void {
  header.write(value.toString(8).padStart(width - 1, '0') + '\0', offset, width, 'ascii');
}

function tarHeader(entry: { path: string; type: 'file' | 'directory'; mode: number; size: number; mtime: number }): Buffer {
  const header = Buffer.alloc(BLOCK);
  const name = entry.type === 'directory' ? `${entry.path}/` : entry.path;
  const nameBytes = Buffer.from(name, 'utf8');
  if (nameBytes.length <= 100) {
    nameBytes.copy(header, 0);
  } else {
    // ustar splits a long path at a '/' into prefix (155 bytes) and name (100 bytes).
    const cut = name.lastIndexOf('/', name.length - 2);
    const prefix = Buffer.from(name.slice(0, cut), 'utf8');
    const rest = Buffer.from(name.slice(cut + 1), 'utf8');
    if (cut < 0 || prefix.length > 155 || rest.length > 100) throw new YinxinError('internal', `the path ${entry.path} is too long for a backup archive`);
    rest.copy(header, 0);
    prefix.copy(header, 345);
  }
  writeOctal(header, 100, 8, entry.mode & 0o7777);
  writeOctal(header, 108, 8, 0);
  writeOctal(header, 116, 8, 0);
  if (entry.size < 8 ** 11) {
    writeOctal(header, 124, 12, entry.size);
  } else {
    header[124] = 0x80; // base-256: the rest of the field is the size, big-endian
    header.writeBigUInt64BE(BigInt(entry.size), 124 + 4);
  }
  writeOctal(header, 136, 12, entry.mtime);
  header.write(entry.type === 'directory' ? '5' : '0', 156, 1, 'ascii');
  header.write('ustar\0', 257, 6, 'ascii');
  header.write('00', 263, 2, 'ascii');
  header.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  return header;
}

interface TarEntry {
  path: string;
  type: 'file' | 'directory' | 'other';
  mode: number;
  size: number;
  mtime: number;
}

function readOctal(header: Buffer, offset: number, width: number): number {
  if (header[offset] & 0x80) {
    let value = 0n;
    for (let i = offset + 1; i < offset + width; i++) value = (value << 8n) | BigInt(header[i]);
    return Number(value);
  }
  const text = header.toString('ascii', offset, offset + width).replace(/[\0 ]+$/, '').trim();
  if (!/^[0-7]*$/.test(text)) throw damaged(`a number field of a header holds ${JSON.stringify(text)}`);
  return text === '' ? 0 : parseInt(text, 8);
}

function cString(header: Buffer, offset: number, width: number): string {
  const end = header.indexOf(0, offset);
  return header.toString('utf8', offset, end >= 0 && end < offset + width ? end : offset + width);
}

/** Parses one header block; null at the end-of-archive (zero) block. */
function parseTarHeader(header: Buffer): TarEntry | null {
  if (header.every((b) => b === 0)) return null;
  const stored = readOctal(header, 148, 8);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i];
  if (sum !== stored) throw damaged('a header checksum does not match');
  if (header.toString('ascii', 257, 262) !== 'ustar') throw damaged('a header is not a ustar header');
  const prefix = cString(header, 345, 155);
  const name = cString(header, 0, 100);
  let path = prefix ? `${prefix}/${name}` : name;
  const flag = String.fromCharCode(header[156]);
  const type = flag === '0' || flag === '\0' ? 'file' : flag === '5' ? 'directory' : 'other';
  if (type === 'directory') path = path.replace(/\/$/, '');
  return { path, type, mode: readOctal(header, 100, 8), size: readOctal(header, 124, 12), mtime: readOctal(header, 136, 12) };
}

function damaged(what: string): YinxinError {
  return new YinxinError('validation-failed', `the backup archive is damaged or not a yinxin backup: ${what}`);
}

// ---- restore ------------------------------------------------------------------------------------------

function safeRelativePath(path: unknown): path is string {
  if (typeof path !== 'string' || path === '' || path.length > 255) return false;
  if (path.startsWith('/') || path.includes('\\') || path.includes('\0')) return false;
  return path.split('/').every((part) => part !== '' && part !== '.' && part !== '..');
}

function checkManifest(value: unknown): BackupManifest {
  const m = value as BackupManifest;
  if (!m || typeof m !== 'object' || m.format !== BACKUP_FORMAT) throw damaged('the manifest is not a yinxin backup manifest');
  if (m.formatVersion !== BACKUP_FORMAT_VERSION) {
    throw new YinxinError('validation-failed', `this backup has format version ${m.formatVersion}; this version of yinxin restores version ${BACKUP_FORMAT_VERSION}`);
  }
  if (!Array.isArray(m.members) || typeof m.createdAt !== 'string' || !Number.isInteger(m.dataDirMode)) throw damaged('the manifest is incomplete');
  const seen = new Set<string>();
  for (const member of m.members) {
    if (!member || !safeRelativePath(member.path) || member.path === MANIFEST_NAME) throw damaged(`the manifest names an unsafe path ${JSON.stringify(member?.path)}`);
    if (seen.has(member.path)) throw damaged(`the manifest names ${member.path} twice`);
    seen.add(member.path);
    if (member.type !== 'file' && member.type !== 'directory') throw damaged(`${member.path} has the unknown type ${JSON.stringify(member.type)}`);
    if (!Number.isInteger(member.mode) || member.mode < 0 || member.mode > 0o7777) throw damaged(`${member.path} has an impossible mode`);
    if (!Number.isSafeInteger(member.size) || member.size < 0 || (member.type === 'directory' && member.size !== 0)) throw damaged(`${member.path} has an impossible size`);
    if (member.type === 'file' && !/^[0-9a-f]{64}$/.test(member.sha256 ?? '')) throw damaged(`${member.path} has no SHA-256`);
    const parent = posix.dirname(member.path);
    if (parent !== '.' && !seen.has(parent)) throw damaged(`${member.path} comes before its directory`);
  }
  if (!m.members.some((x) => x.path === SNAPSHOT_MEMBER && x.type === 'file')) throw damaged('the backup holds no store snapshot');
  return m;
}

class ArchiveReader {
  readonly #fh: FileHandle;
  readonly size: number;
  readonly #onProgress: ProgressCallback | undefined;
  position = 0;

  constructor(fh: FileHandle, size: number, onProgress: ProgressCallback | undefined) {
    this.#fh = fh;
    this.size = size;
    this.#onProgress = onProgress;
  }

  async read(length: number): Promise<Buffer> {
    if (this.position + length > this.size) throw damaged('it ends in the middle of a member');
    const buffer = Buffer.alloc(length);
    let got = 0;
    while (got < length) {
      const { bytesRead } = await this.#fh.read(buffer, got, length - got, this.position + got);
      if (bytesRead === 0) throw damaged('it ends in the middle of a member');
      got += bytesRead;
    }
    this.position += length;
    this.#onProgress?.(this.position, this.size);
    return buffer;
  }

  async header(): Promise<TarEntry | null> {
    if (this.position + BLOCK > this.size) throw damaged('it has no end-of-archive marker');
    return parseTarHeader(await this.read(BLOCK));
  }

  async skipPadding(size: number): Promise<void> {
    const pad = (BLOCK - (size % BLOCK)) % BLOCK;
    if (pad) await this.read(pad);
  }
}

/** Reads and checks the manifest of a backup without restoring anything. */
export async function readBackupManifest(file: string): Promise<BackupManifest> {
  const fh = await openArchive(file);
  try {
    return await readManifest(new ArchiveReader(fh, (await fh.stat()).size, undefined));
  } finally {
    await fh.close();
  }
}

async function openArchive(file: string): Promise<FileHandle> {
  try {
    return await open(file, 'r');
  } catch (e) {
    throw new YinxinError('not-found', `the backup ${file} cannot be read: ${(e as Error).message}`, undefined, { cause: e });
  }
}

async function readManifest(reader: ArchiveReader): Promise<BackupManifest> {
  const first = await reader.header();
  if (!first || first.path !== MANIFEST_NAME || first.type !== 'file' || first.size > MAX_MANIFEST) throw damaged(`it does not start with ${MANIFEST_NAME}`);
  const text = (await reader.read(first.size)).toString('utf8');
  await reader.skipPadding(first.size);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw damaged(`${MANIFEST_NAME} is not JSON`);
  }
  return checkManifest(parsed);
}

async function isEmptyOrMissing(dir: string): Promise<'missing' | 'empty' | 'non-empty'> {
  try {
    const s = await stat(dir);
    if (!s.isDirectory()) throw new YinxinError('conflict', `${dir} exists and is not a directory`);
    return (await readdir(dir)).length === 0 ? 'empty' : 'non-empty';
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw e;
  }
}

/**
 * Restores a backup into `dataDir`. Every member is written to a staging directory beside it and
 * checked against the manifest first; the data directory is replaced only when all of it verified.
 */
export async function restoreBackup(options: RestoreBackupOptions): Promise<RestoreResult> {
  const { file, dataDir } = options;
  const fh = await openArchive(file);
  let staging: string | undefined;
  try {
    const reader = new ArchiveReader(fh, (await fh.stat()).size, options.onProgress);
    const manifest = await readManifest(reader);

    const state = await isEmptyOrMissing(dataDir);
    if (state === 'non-empty' && !options.force) {
      throw new YinxinError('conflict', `the data directory ${dataDir} is not empty; stop the appliance and restore with --force to replace it (it is moved aside, not deleted), or choose an empty directory`);
    }

    await mkdir(dirname(dataDir), { recursive: true });
    staging = await mkdtemp(`${dataDir}.restoring-`);
    for (const member of manifest.members) {
      const entry = await reader.header();
      if (!entry || entry.path !== member.path || entry.type !== member.type || entry.size !== member.size) {
        throw damaged(`the archive holds ${entry ? `${entry.type} ${entry.path} (${entry.size} bytes)` : 'nothing more'} where the manifest lists ${member.type} ${member.path} (${member.size} bytes)`);
      }
      const target = join(staging, ...member.path.split('/'));
      if (member.type === 'directory') {
        await mkdir(target, { mode: 0o700 });
        continue;
      }
      const out = await open(target, 'wx', 0o600);
      const hash = createHash('sha256');
      try {
        let left = member.size;
        while (left > 0) {
          const chunk = await reader.read(Math.min(CHUNK, left));
          hash.update(chunk);
          await out.write(chunk);
          left -= chunk.length;
        }
        await out.sync();
      } finally {
        await out.close();
      }
      if (hash.digest('hex') !== member.sha256) {
        throw new YinxinError('validation-failed', `the backup is damaged: ${member.path} does not match its SHA-256 in the manifest; nothing was restored`);
      }
      await reader.skipPadding(member.size);
      await utimes(target, entry.mtime, entry.mtime);
    }
    if ((await reader.header()) !== null) throw damaged('it holds members the manifest does not list');

    // Modes last, deepest first, so a read-only directory does not stop its own restore.
    for (const member of [...manifest.members].reverse()) {
      await chmod(join(staging, ...member.path.split('/')), member.mode);
    }
    await chmod(staging, manifest.dataDirMode);

    // The snapshot must open as a store before it replaces anything.
    const check = openLmdbStore(join(staging, STORE_DIR), { readOnly: true });
    await check.close();

    let previousDataDir: string | undefined;
    if (state === 'non-empty') {
      previousDataDir = `${dataDir}.before-restore-${new Date().toISOString().replace(/[:.]/g, '-')}-${randomBytes(3).toString('hex')}`;
      await rename(dataDir, previousDataDir);
    } else if (state === 'empty') {
      await rmdir(dataDir);
    }
    await rename(staging, dataDir);
    staging = undefined;
    await syncDirectory(dirname(dataDir));
    return { manifest, ...(previousDataDir ? { previousDataDir } : {}) };
  } finally {
    await fh.close();
    if (staging) await rm(staging, { recursive: true, force: true });
  }
}
