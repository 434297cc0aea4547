// Atomic file writes: the bytes go to a temporary file in the destination's folder, which is fsynced,
// renamed over the destination and followed by an fsync of the folder. A reader therefore sees either
// the old file or the complete new one, also after a crash or SIGKILL. A killed writer leaves its
// temporary file behind (".<name>.tmp-<pid>-<hex>"); removeStaleTemps() clears those of dead processes.
import {
  closeSync, fsyncSync, linkSync, openSync, readdirSync, renameSync, unlinkSync, writeSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';

const CHUNK = 8 << 20;   // write in pieces of 8 MiB (writeSync may also write less than asked)
const TEMP_RE = /^\..+\.tmp-(\d+)-[0-9a-f]{8}$/;

function tempPathFor(path: string): string {
  const abs = resolve(path);
  return join(dirname(abs), `.${basename(abs)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

function writeAll(fd: number, data: Uint8Array): void {
  for (let off = 0; off < data.byteLength;) {
    const n = Math.min(CHUNK, data.byteLength - off);
    off += writeSync(fd, data, off, n);
  }
}

/** fsync of a folder, so that a rename or a new entry in it is durable. Ignored where folders cannot
 *  be opened or synced (Windows). */
export function fsyncDir(dir: string): void {
  let fd = -1;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // not supported on this platform/file system: the rename is still atomic, only less durable
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

/** Writes `data` (one buffer or several, concatenated) to `path` atomically. */
export function writeFileAtomic(path: string, data: Uint8Array | string | readonly Uint8Array[]): void {
  const chunks = typeof data === 'string' ? [Buffer.from(data, 'utf8')] : data instanceof Uint8Array ? [data] : data;
  const tmp = tempPathFor(path);
  let fd: number;
  try {
    fd = openSync(tmp, 'wx', 0o644);
  } catch (e) {
    throw new Error(`dd2: cannot write ${path}: ${(e as Error).message}`);
  }
  try {
    for (const c of chunks) writeAll(fd, c);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    try { unlinkSync(tmp); } catch { /* already gone */ }
    throw new Error(`dd2: cannot write ${path}: ${(e as Error).message}`);
  }
  closeSync(fd);
  commitTemp(tmp, path);
}

function commitTemp(tmp: string, path: string): void {
  try {
    renameSync(tmp, path);
  } catch (e) {
    try { unlinkSync(tmp); } catch { /* already gone */ }
    throw new Error(`dd2: cannot write ${path}: ${(e as Error).message}`);
  }
  fsyncDir(dirname(resolve(path)));
}

/**
 * Makes `path` another name of the existing file `target` (a hard link), replacing `path` atomically.
 * Falls back to an atomic copy where hard links are not supported.
 */
export function linkAtomic(target: string, path: string, copy: () => Uint8Array): void {
  const tmp = tempPathFor(path);
  try {
    linkSync(target, tmp);
  } catch {
    writeFileAtomic(path, copy());
    return;
  }
  commitTemp(tmp, path);
}

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes temporary files left in `dir` by writers that were killed (their process is gone).
 *  Returns the names removed. */
export function removeStaleTemps(dir: string): string[] {
  const removed: string[] = [];
  let names: string[];
  try { names = readdirSync(dir); } catch { return removed; }
  for (const name of names) {
    const m = TEMP_RE.exec(name);
    if (!m || processAlive(Number(m[1]))) continue;
    try { unlinkSync(join(dir, name)); removed.push(name); } catch { /* raced with someone else */ }
  }
  return removed;
}

/** True for the names of temporary files made by writeFileAtomic (for tests and cleanup). */
export function isTempName(name: string): boolean {
  return TEMP_RE.test(name);
}
