// `slipctl exec service/NAME -- CMD [ARGS...]`: runs a command in one replica of a Service
// (through the API server and the controller manager), copies its output to this process's
// stdout and stderr, and exits with the command's exit code.

import { StringDecoder } from 'node:string_decoder';
import type { Command, CommandContext } from '../command.js';
import { CliError } from '../errors.js';
import { intFlag, serviceName, servicePath } from './service-target.js';
import { openStream } from './stream-request.js';

/** Handles one NDJSON line of the exec answer; returns the exit code once it arrives. */
function handleLine(ctx: CommandContext, decoders: Record<'stdout' | 'stderr', StringDecoder>, line: string): number | undefined {
  let msg: Record<string, unknown>;
  try {
    msg = JSON.parse(line);
  } catch {
    throw new CliError(`unexpected line in the exec stream (not JSON): ${JSON.stringify(line.slice(0, 200))}`);
  }
  if (typeof msg.exitCode === 'number') return msg.exitCode;
  if ((msg.stream === 'stdout' || msg.stream === 'stderr') && typeof msg.data === 'string') {
    const text = decoders[msg.stream].write(Buffer.from(msg.data, 'base64'));
    if (text) (msg.stream === 'stdout' ? ctx.stdout : ctx.stderr)(text);
    return undefined;
  }
  if (typeof msg.message === 'string') throw new CliError(`exec failed: ${msg.message}`);
  throw new CliError(`unexpected line in the exec stream: ${JSON.stringify(line.slice(0, 200))}`);
}

export const command: Command = {
  name: 'exec',
  summary: 'Run a command in a replica of a Service and exit with its exit code.',
  usage: 'exec service/NAME [-n NS] [--replica N] -- CMD [ARGS...]',
  description: 'service/NAME may also be written svc/NAME or NAME. The command runs in replica 0 of the active release\nunless --replica is given; there is no terminal or standard input.',
  examples: ['slipctl exec svc/web -n shop-prod -- ls -la /app', "slipctl exec web --replica 1 -- sh -c 'env | sort'"],
  flags: [{ name: 'replica', type: 'string', value: 'N', description: 'Index of the replica to run in (default 0).' }],
  async run(ctx, flags) {
    const [arg, ...command] = flags.positional;
    const name = await serviceName(ctx.session, arg, 'exec');
    if (command.length === 0) throw new CliError('exec needs a command after --, e.g. slipctl exec service/web -- ls /app');
    const replica = intFlag(flags.string('replica'), 'replica');
    const res = await openStream(ctx.session, 'POST', `${servicePath(ctx.session.namespace, name)}/exec`, {
      accept: 'application/x-ndjson, application/json',
      body: { command, ...(replica !== undefined ? { replica } : {}) },
    });
    const decoders = { stdout: new StringDecoder('utf8'), stderr: new StringDecoder('utf8') };
    const bytes = new StringDecoder('utf8');
    let buffered = '';
    let exitCode: number | undefined;
    try {
      for await (const chunk of res.body) {
        buffered += bytes.write(chunk as Buffer);
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl).trim();
          buffered = buffered.slice(nl + 1);
          if (line) exitCode = handleLine(ctx, decoders, line) ?? exitCode;
        }
      }
    } catch (err) {
      if (err instanceof CliError) throw err;
      throw new CliError(`the exec stream broke off: ${(err as Error).message}`);
    }
    buffered += bytes.end();
    if (buffered.trim()) exitCode = handleLine(ctx, decoders, buffered.trim()) ?? exitCode;
    for (const stream of ['stdout', 'stderr'] as const) {
      const rest = decoders[stream].end();
      if (rest) (stream === 'stdout' ? ctx.stdout : ctx.stderr)(rest);
    }
    if (exitCode === undefined) throw new CliError('the exec stream ended without an exit code (the connection to the replica was lost?)');
    // A shell reports codes 0-255; anything else is reported as a plain failure.
    return Number.isInteger(exitCode) && exitCode >= 0 && exitCode <= 255 ? exitCode : 1;
  },
};
