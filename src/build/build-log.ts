// Build logs kept with the Release: one file per Release uid under the controller manager's data
// directory (`<dataDir>/build-logs/<uid>.log`), appended while the build runs, read back whole,
// as a tail, or followed until the build ends.

import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, open, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';

export class BuildLogs {
  private readonly active = new Set<string>();

  constructor(private readonly dir: string) {}

  pathOf(uid: string): string {
    if (!/^[A-Za-z0-9-]+$/.test(uid)) throw new Error(`invalid release uid ${JSON.stringify(uid)}`);
    return join(this.dir, 'build-logs', `${uid}.log`);
  }

  /** A new log for a build (an earlier attempt's log is replaced). */
  async create(uid: string): Promise<WriteStream> {
    await mkdir(join(this.dir, 'build-logs'), { recursive: true, mode: 0o700 });
    const stream = createWriteStream(this.pathOf(uid), { flags: 'w', mode: 0o600 });
    this.active.add(uid);
    stream.once('close', () => this.active.delete(uid));
    return stream;
  }

  isActive(uid: string): boolean {
    return this.active.has(uid);
  }

  /** Deletes the log of a Release that is gone. */
  async remove(uid: string): Promise<void> {
    await rm(this.pathOf(uid), { force: true });
  }

  async exists(uid: string): Promise<boolean> {
    return stat(this.pathOf(uid)).then(() => true, () => false);
  }

  /** The last `lines` lines of the log ('' when there is none). */
  async tail(uid: string, lines: number): Promise<string> {
    const text = await readFile(this.pathOf(uid), 'utf8').catch(() => '');
    return tailLines(text, lines);
  }

  /** Writes the log to `out`, then (follow) what is appended until the build ends or `signal` aborts. */
  async stream(uid: string, out: NodeJS.WritableStream, follow: boolean, signal: AbortSignal): Promise<void> {
    let offset = 0;
    const file = await open(this.pathOf(uid), 'r');
    try {
      for (;;) {
        const active = this.isActive(uid);
        const { size } = await file.stat();
        while (offset < size) {
          const { bytesRead, buffer } = await file.read({ buffer: Buffer.alloc(Math.min(65_536, size - offset)), position: offset });
          if (!bytesRead) break;
          offset += bytesRead;
          out.write(buffer.subarray(0, bytesRead));
        }
        if (!follow || !active || signal.aborted) break;
        await new Promise((r) => setTimeout(r, 200));
      }
    } finally {
      await file.close();
      out.end();
    }
  }
}

export function tailLines(text: string, lines: number): string {
  return text.replace(/\n+$/, '').split('\n').slice(-lines).join('\n');
}
