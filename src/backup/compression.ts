// Artifact compression: gzip through node:zlib, zstd through the `zstd` tool (Node 20 has no zstd
// in zlib), or none. Each kind gives a compressing and a decompressing stream and the artifact
// file extension, so backup and restore always agree.

import { spawn } from 'node:child_process';
import { Duplex, PassThrough } from 'node:stream';
import { createGunzip, createGzip } from 'node:zlib';

export type Compression = 'gzip' | 'zstd' | 'none';

export const COMPRESSION_EXTENSION: Record<Compression, string> = { gzip: '.gz', zstd: '.zst', none: '' };

/** A Duplex running `zstd` with `args`; a non-zero exit fails the stream with zstd's message. */
function zstdStream(args: string[]): Duplex {
  const child = spawn('zstd', ['-q', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-2000)));
  const duplex = Duplex.from({ writable: child.stdin, readable: child.stdout });
  child.on('error', (e) => duplex.destroy(new Error(`zstd could not be started: ${e.message}`)));
  child.on('close', (code, sig) => {
    if (code !== 0) duplex.destroy(new Error(`zstd ${sig ? `was killed by ${sig}` : `exited with code ${code}`}: ${stderr.trim() || 'no message'}`));
  });
  duplex.on('close', () => {
    if (child.exitCode === null && child.signalCode === null && !duplex.readableEnded) child.kill('SIGKILL');
  });
  return duplex;
}

/** The stream that compresses an artifact on its way to the store. */
export function compressor(kind: Compression): Duplex {
  if (kind === 'gzip') return createGzip({ level: 6 });
  if (kind === 'zstd') return zstdStream(['-3', '-T0', '-c']);
  return new PassThrough();
}

/** The stream that turns a stored artifact back into the dump the engine restores. */
export function decompressor(kind: Compression): Duplex {
  if (kind === 'gzip') return createGunzip();
  if (kind === 'zstd') return zstdStream(['-d', '-c']);
  return new PassThrough();
}
