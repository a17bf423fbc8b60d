// Logs and exec for `slipctl logs` / `slipctl exec`: Docker's multiplexed streams turned into
// prefixed log lines (all replicas merged) and into NDJSON frames with the command's exit code.

import { PassThrough, type Writable } from 'node:stream';
import type Docker from 'dockerode';
import { demuxToText } from '../docker/demux.js';

export interface LogSource {
  docker: Docker;
  id: string;
  name: string;
}

export interface LogOptions {
  follow: boolean;
  tail?: number;
  timestamps: boolean;
}

/** Splits a byte stream into lines, each written to `out` with a prefix. */
function linePrefixer(prefix: string, out: Writable): PassThrough {
  const input = new PassThrough();
  let partial = '';
  input.on('data', (chunk: Buffer) => {
    partial += chunk.toString('utf8');
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      if (!out.writableEnded) out.write(`${prefix}${partial.slice(0, nl)}\n`);
      partial = partial.slice(nl + 1);
    }
  });
  input.on('end', () => {
    if (partial && !out.writableEnded) out.write(`${prefix}${partial}\n`);
  });
  return input;
}

/** Streams the logs of all `sources` into `out`, ending it when every source ends (or at once on abort). */
export async function streamLogs(sources: LogSource[], options: LogOptions, out: PassThrough, signal: AbortSignal): Promise<void> {
  const streams: NodeJS.ReadableStream[] = [];
  signal.addEventListener('abort', () => {
    for (const s of streams) (s as unknown as { destroy?: () => void }).destroy?.();
  });
  await Promise.all(
    sources.map(async (source) => {
      const result = (await source.docker.getContainer(source.id).logs({
        follow: options.follow as true,
        stdout: true,
        stderr: true,
        timestamps: options.timestamps,
        ...(options.tail !== undefined ? { tail: options.tail } : {}),
      })) as unknown as NodeJS.ReadableStream | Buffer;
      const lines = linePrefixer(`[${source.name}] `, out);
      if (Buffer.isBuffer(result)) {
        // Without follow, dockerode answers with the whole (multiplexed) log at once.
        lines.end(demuxToText(result));
        await new Promise((resolve) => lines.once('end', resolve).resume());
        return;
      }
      const stream = result;
      streams.push(stream);
      source.docker.modem.demuxStream(stream, lines, lines);
      await new Promise<void>((resolve) => {
        stream.on('end', resolve);
        stream.on('close', resolve);
        stream.on('error', resolve);
      });
      lines.end();
    }),
  );
  out.end();
}

/** Runs `command` in the container, writing `{stream, data}` frames and finally `{exitCode}` as NDJSON. */
export async function streamExec(docker: Docker, id: string, command: string[], out: PassThrough, signal: AbortSignal): Promise<void> {
  const exec = await docker.getContainer(id).exec({ Cmd: command, AttachStdout: true, AttachStderr: true, AttachStdin: false, Tty: false });
  const stream = (await exec.start({ hijack: true, stdin: false })) as NodeJS.ReadableStream & { destroy(): void };
  signal.addEventListener('abort', () => stream.destroy());
  const frame = (name: 'stdout' | 'stderr') => {
    const sink = new PassThrough();
    sink.on('data', (chunk: Buffer) => {
      if (!out.writableEnded) out.write(`${JSON.stringify({ stream: name, data: chunk.toString('base64') })}\n`);
    });
    return sink;
  };
  docker.modem.demuxStream(stream, frame('stdout'), frame('stderr'));
  await new Promise<void>((resolve) => {
    stream.on('end', resolve);
    stream.on('close', resolve);
    stream.on('error', resolve);
  });
  const info = await exec.inspect();
  out.end(`${JSON.stringify({ exitCode: info.ExitCode ?? -1 })}\n`);
}
