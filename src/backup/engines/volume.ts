// Docker volume backup engine: a one-shot helper container (Slipway's own helper image, built on
// the node when missing (helper-image.ts), or an image the caller names, which must be on the node
// and contain `tar`, and `sh`/`rm` for overwriting restores) mounts the volume read-only at
// /data and runs `tar -C /data -cf - .`; its stdout is demultiplexed from stderr
// (modem.demuxStream) and streamed out with backpressure. Restore creates a NEW volume (an
// existing one is refused unless overwriteSource) and pipes the tar into `tar -C /data -xf -`
// over the container's attached (hijacked) stdin. Works with any dockerode client, so also over
// the SSH tunnel to a remote node. Helper containers are labelled and always removed.

import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { Writable } from 'node:stream';
import type Docker from 'dockerode';
import { dockerMessage, dockerStatus } from '../../docker/errors.js';
import { nonEmpty, ToolError, type BackupEngine, type DumpResult, type EngineOptions } from './engine.js';
import { ensureHelperImage, requireHelperImage } from './helper-image.js';

export const BACKUP_HELPER_LABELS = {
  'slipway.dev/managed-by': 'slipway',
  'slipway.dev/role': 'backup',
} as const;
/** Label on helper containers naming the volume they work on. */
export const VOLUME_LABEL = 'slipway.dev/volume';

export interface VolumeTarget {
  /** Docker Engine of the node holding the volume. */
  docker: Docker;
  /** Docker volume name, e.g. volumeName(namespace, service, name). */
  volume: string;
}

export interface VolumeRestoreTarget {
  /** Volume to create and restore into. */
  volume: string;
  /** Another node to restore onto (default: the source volume's node). */
  docker?: Docker;
  /** Allow restoring over an existing volume (its contents are deleted first; destructive). */
  overwriteSource?: boolean;
  /** Extra labels for a newly created volume. */
  labels?: Record<string, string>;
}

export interface VolumeEngineOptions extends EngineOptions {
  /**
   * Helper image, never pulled: it must be on the node and contain `tar` (and `sh`, `rm` for
   * overwriteSource). Unset: Slipway's own HELPER_IMAGE, built on the node when it is missing.
   */
  image?: string;
  /** The node's name, for error messages. */
  node?: string;
  /** The static busybox the default helper image is built from (default /bin/busybox). */
  busyboxPath?: string;
}

function tail(text: string, n = 8): string {
  return text.trim().split('\n').slice(-n).join('\n').trim();
}

/**
 * Watches a tar stream go by and tells whether it holds any entry other than the root
 * directory ("./"). Understands ustar/GNU headers (octal and base-256 sizes); pax and GNU
 * long-name meta entries are skipped, not counted.
 */
export class TarEntryWatcher {
  private pending = Buffer.alloc(0);
  /** Bytes of entry data (plus padding) still to skip before the next header. */
  private skip = 0;
  private done = false;
  entries = 0;

  push(chunk: Buffer): void {
    if (this.done) return;
    let buf = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    for (;;) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, buf.length);
        this.skip -= n;
        buf = buf.subarray(n);
        if (this.skip > 0) break;
      }
      if (buf.length < 512) break;
      const header = buf.subarray(0, 512);
      buf = buf.subarray(512);
      if (header.every((b) => b === 0)) {
        this.done = true; // end-of-archive marker
        break;
      }
      const size = TarEntryWatcher.size(header.subarray(124, 136));
      this.skip = Math.ceil(size / 512) * 512;
      const type = String.fromCharCode(header[156] ?? 0);
      const name = header.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
      const meta = type === 'x' || type === 'g' || type === 'L' || type === 'K';
      if (!meta && name !== './' && name !== '.' && name !== '') {
        this.entries++;
        this.done = true; // one real entry is all we need to know
        break;
      }
    }
    this.pending = this.done ? Buffer.alloc(0) : Buffer.from(buf);
  }

  private static size(field: Buffer): number {
    if ((field[0]! & 0x80) !== 0) {
      let n = 0;
      for (let i = 1; i < field.length; i++) n = n * 256 + field[i]!;
      return n;
    }
    const s = field.toString('ascii').replace(/[\0 ]+/g, '');
    return s ? parseInt(s, 8) : 0;
  }
}

type Hijacked = NodeJS.ReadWriteStream & { destroy(err?: Error): void; end(): void };

/** Waits for `drain` on a writable, failing if it errors or closes first. */
function drained(out: NodeJS.WritableStream): Promise<void> {
  const em = out as unknown as NodeJS.EventEmitter;
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      em.removeListener('drain', onDrain);
      em.removeListener('error', onError);
      em.removeListener('close', onClose);
    };
    const onDrain = () => (cleanup(), resolve());
    const onError = (e: Error) => (cleanup(), reject(e));
    const onClose = () => (cleanup(), reject(new Error('the output stream was closed')));
    em.on('drain', onDrain);
    em.on('error', onError);
    em.on('close', onClose);
  });
}

/** Resolves when a hijacked Docker stream has ended (or failed). */
function streamDone(stream: NodeJS.ReadableStream): Promise<Error | undefined> {
  return new Promise((resolve) => {
    stream.once('end', () => resolve(undefined));
    stream.once('close', () => resolve(undefined));
    stream.once('error', (e: Error) => resolve(e));
  });
}

export class VolumeEngine implements BackupEngine<VolumeTarget, VolumeRestoreTarget, void> {
  constructor(private readonly options: VolumeEngineOptions = {}) {}

  /** The helper image to run on this node: checked to be there, or (the default) built there. */
  private helperImage(docker: Docker): Promise<string> {
    const { image, node, busyboxPath } = this.options;
    return image ? requireHelperImage(docker, image, node) : ensureHelperImage(docker, node, busyboxPath);
  }

  /** The volume's inspect data, or undefined if it does not exist. */
  private async volumeInfo(docker: Docker, volume: string): Promise<Docker.VolumeInspectInfo | undefined> {
    try {
      return await docker.getVolume(volume).inspect();
    } catch (e) {
      if (dockerStatus(e) === 404) return undefined;
      throw new Error(`volume "${volume}": inspecting it failed: ${dockerMessage(e)}`);
    }
  }

  private async createHelper(docker: Docker, image: string, volume: string, readOnly: boolean, entrypoint: string[], cmd: string[], stdin: boolean): Promise<Docker.Container> {
    try {
      return await docker.createContainer({
        name: `slipway-volbackup-${randomBytes(6).toString('hex')}`,
        Image: image,
        Entrypoint: entrypoint,
        Cmd: cmd,
        WorkingDir: '/',
        User: '0:0',
        Labels: { ...BACKUP_HELPER_LABELS, [VOLUME_LABEL]: volume },
        AttachStdin: stdin,
        OpenStdin: stdin,
        StdinOnce: stdin,
        AttachStdout: true,
        AttachStderr: true,
        Tty: false,
        NetworkDisabled: true,
        HostConfig: {
          Binds: [`${volume}:/data${readOnly ? ':ro' : ''}`],
          NetworkMode: 'none',
          AutoRemove: false,
          RestartPolicy: { Name: 'no' },
        },
      });
    } catch (e) {
      throw new Error(`volume "${volume}": creating the helper container failed: ${dockerMessage(e)}`);
    }
  }

  private async removeHelper(container: Docker.Container): Promise<void> {
    await container.remove({ force: true, v: false }).catch((e: unknown) => {
      if (dockerStatus(e) !== 404) throw new Error(`removing helper container ${container.id} failed: ${dockerMessage(e)}`);
    });
  }

  async dump(target: VolumeTarget, out: NodeJS.WritableStream, signal?: AbortSignal): Promise<DumpResult> {
    signal?.throwIfAborted();
    const { docker, volume } = target;
    if (!volume) throw new Error('volume engine: the target has no volume name');
    if (!(await this.volumeInfo(docker, volume))) throw new Error(`volume "${volume}" does not exist on the node`);
    const image = await this.helperImage(docker);
    const container = await this.createHelper(docker, image, volume, true, ['tar'], ['-C', '/data', '-cf', '-', '.'], false);
    const onAbort = () => void container.kill().catch(() => undefined);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const stream = (await container.attach({ stream: true, stdout: true, stderr: true })) as unknown as Hijacked;
      const ended = streamDone(stream);
      let stderr = '';
      let bytes = 0;
      let outError: Error | undefined;
      const watcher = new TarEntryWatcher();
      // demuxStream ignores backpressure: pause the Docker stream while `out` is full.
      const stdoutSink = new Writable({
        write(chunk: Buffer, _enc, cb) {
          bytes += chunk.length;
          watcher.push(chunk);
          if (outError) return cb();
          let ok: boolean;
          try {
            ok = out.write(chunk);
          } catch (e) {
            outError = e as Error;
            stream.destroy();
            return cb();
          }
          if (ok) return cb();
          stream.pause();
          drained(out).then(
            () => {
              stream.resume();
              cb();
            },
            (e: Error) => {
              outError = e;
              stream.destroy();
              cb();
            },
          );
        },
      });
      const stderrSink = new Writable({
        write(chunk: Buffer, _enc, cb) {
          stderr = (stderr + chunk.toString('utf8')).slice(-16_000);
          cb();
        },
      });
      docker.modem.demuxStream(stream, stdoutSink, stderrSink);
      try {
        await container.start();
      } catch (e) {
        stream.destroy();
        throw new Error(`volume "${volume}": starting the helper container failed: ${dockerMessage(e)}`);
      }
      // Only after start: waiting on a created container ('not-running') would return at once.
      const waited = container.wait();
      waited.catch(() => undefined);
      const streamErr = await ended;
      stdoutSink.end();
      stderrSink.end();
      await Promise.all([once(stdoutSink, 'finish'), once(stderrSink, 'finish')]);
      if (outError || streamErr) await container.kill().catch(() => undefined);
      if (outError) {
        throw new Error(`volume "${volume}": writing the backup failed: ${outError.message}`);
      }
      const { StatusCode: code } = (await waited) as { StatusCode: number };
      if (signal?.aborted) throw new ToolError(`tar of volume "${volume}" aborted`, 'tar', code, '');
      const err = tail(stderr);
      if (code !== 0) {
        throw new ToolError(`tar of volume "${volume}" exited with code ${code}${err ? `: ${err}` : ''}`, 'tar', code, err);
      }
      if (streamErr) throw new Error(`volume "${volume}": the container output stream failed: ${streamErr.message}`);
      if (bytes === 0) throw new Error(`tar of volume "${volume}" produced no output`);
      if (watcher.entries === 0) throw new Error(`volume "${volume}" is empty: nothing to back up`);
      return { toolVersion: `tar in ${image}`, bytes };
    } finally {
      signal?.removeEventListener('abort', onAbort);
      await this.removeHelper(container);
    }
  }

  async restore(target: VolumeTarget, artifact: NodeJS.ReadableStream, into: VolumeRestoreTarget, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    if (!into?.volume) throw new Error('volume engine: restore needs a target volume name');
    const docker = into.docker ?? target.docker;
    const volume = into.volume;
    const exists = await this.volumeInfo(docker, volume);
    if (exists && !into.overwriteSource) {
      const what = docker === target.docker && volume === target.volume ? 'the source volume' : 'an existing volume';
      throw new Error(`volume restore: refusing to restore into ${what} "${volume}" (restores go into a NEW volume; set overwriteSource to allow it)`);
    }
    const image = await this.helperImage(docker);
    let created = false;
    if (!exists) {
      try {
        await docker.createVolume({
          Name: volume,
          Labels: { 'slipway.dev/managed-by': 'slipway', 'slipway.dev/restored-from': target.volume, ...into.labels },
        });
        created = true;
      } catch (e) {
        throw new Error(`volume restore: creating volume "${volume}" failed: ${dockerMessage(e)}`);
      }
    }
    try {
      await this.extract(docker, image, volume, artifact, !!exists, signal);
    } catch (e) {
      if (created) await docker.getVolume(volume).remove({ force: true }).catch(() => undefined);
      throw e;
    }
  }

  private async extract(docker: Docker, image: string, volume: string, artifact: NodeJS.ReadableStream, clearFirst: boolean, signal?: AbortSignal): Promise<void> {
    const [entrypoint, cmd] = clearFirst
      ? [['sh', '-c'], ['rm -rf /data/..?* /data/.[!.]* /data/* && exec tar -C /data -xf -']]
      : [['tar'], ['-C', '/data', '-xf', '-']];
    const container = await this.createHelper(docker, image, volume, false, entrypoint, cmd, true);
    const onAbort = () => void container.kill().catch(() => undefined);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const stream = (await container.attach({ stream: true, hijack: true, stdin: true, stdout: true, stderr: true })) as unknown as Hijacked;
      stream.on('error', () => undefined); // EPIPE when tar exits early: its exit code tells why
      const ended = streamDone(stream);
      let output = '';
      const collect = new Writable({
        write(chunk: Buffer, _enc, cb) {
          output = (output + chunk.toString('utf8')).slice(-16_000);
          cb();
        },
      });
      docker.modem.demuxStream(stream, collect, collect);
      try {
        await container.start();
      } catch (e) {
        stream.destroy();
        throw new Error(`volume restore: starting the helper container failed: ${dockerMessage(e)}`);
      }
      // Only after start: waiting on a created container ('not-running') would return at once.
      const waited = container.wait();
      waited.catch(() => undefined);
      let gone = false;
      void ended.then(() => (gone = true));
      let inputError: Error | undefined;
      try {
        for await (const chunk of nonEmpty(artifact, `volume restore into "${volume}"`)) {
          if (gone) break;
          if (!stream.write(chunk)) {
            const ok = await Promise.race([drained(stream).then(() => true, () => false), ended.then(() => false)]);
            if (!ok) break;
          }
        }
        // Half-close: tar sees EOF on stdin (StdinOnce) and finishes.
        if (!gone) stream.end();
      } catch (e) {
        // The artifact failed (empty, unreadable): never let tar see EOF and commit a partial tree.
        inputError = e as Error;
        await container.kill().catch(() => undefined);
        stream.destroy();
      }
      const { StatusCode: code } = (await waited) as { StatusCode: number };
      await Promise.race([ended, new Promise((r) => setTimeout(r, 2000))]);
      collect.end();
      if (signal?.aborted) throw new ToolError(`tar restore into volume "${volume}" aborted`, 'tar', code, '');
      if (inputError) throw inputError;
      const err = tail(output);
      if (code !== 0) {
        throw new ToolError(`tar restore into volume "${volume}" exited with code ${code}${err ? `: ${err}` : ''}`, 'tar', code, err);
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      await this.removeHelper(container);
    }
  }
}
