/** Small file reads shared by the readers and importers. */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { WattraceError } from './errors.js';

/** Up to the first `n` bytes of a file (fewer when it is shorter). Throws as fs does. */
export function readHead(file: string, n: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const b = Buffer.alloc(n);
    return b.subarray(0, fs.readSync(fd, b, 0, n, 0));
  } finally {
    fs.closeSync(fd);
  }
}

/** A compressed file (gzip, zstd, xz by their magic bytes) is refused, saying how to decompress it. */
export function checkNotCompressed(file: string): void {
  const b = readHead(file, 6);
  const n = b.length;
  const compressed = n >= 2 && b[0] === 0x1f && b[1] === 0x8b ? 'gzip' : n >= 4 && b.readUInt32BE(0) === 0x28b52ffd ? 'zstd' : n >= 6 && b.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])) ? 'xz' : null;
  if (compressed) throw new WattraceError('E_FILE', `is ${compressed}-compressed; decompress it first (e.g. ${compressed === 'gzip' ? 'gunzip -k' : compressed === 'zstd' ? 'zstd -d' : 'unxz -k'} ${path.basename(file)})`, { file });
}

/** The sha256 of a file, hex, read in 1 MiB blocks. */
export function sha256File(file: string): string {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(1 << 20);
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) h.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}
