// How slipctl reports failures: server errors as kubectl does (`Error from server (Reason):
// message`, the Status message unchanged, plus any 422 cause the message does not already
// spell out), client-side problems as `error: ...`. Stack traces only with SLIPWAY_DEBUG=1.

import { ApiRequestError } from '../src/client/api-client.js';
import { UnknownResourceError } from '../src/client/discovery.js';
import { UsageError } from './args.js';

/** A client-side failure with a message meant for the user. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** Where to configure the CA, after a TLS failure with none configured. */
const tlsHint = (message: string): string =>
  /^TLS: .*no certificate authority is configured/.test(message) ? '\nset certificate-authority in the slipctl config (make up writes it) or pass --certificate-authority FILE' : '';

/**
 * The lines to print for an error. `context` (kubectl's `error when creating "file.yaml"`) goes
 * between the reason and the server's message so the message itself stays unchanged.
 */
export function formatError(err: unknown, context?: string): string {
  if (err instanceof StepError) return formatError(err.inner, context ? `${context}: ${err.step}` : err.step);
  const prefix = context ? `${context}: ` : '';
  if (err instanceof ApiRequestError) {
    const status = err.status;
    if (!status) return err.code === 0 ? `error: ${prefix}${err.message}${tlsHint(err.message)}` : `Error from server: ${prefix}${err.message}`;
    const lines = [`Error from server (${status.reason || 'Unknown'}): ${prefix}${status.message}`];
    for (const cause of status.details?.causes ?? []) {
      const text = cause.field ? `${cause.field}: ${cause.message}` : cause.message;
      if (!status.message.includes(text)) lines.push(`* ${text}`);
    }
    return lines.join('\n');
  }
  if (err instanceof CliError || err instanceof UsageError || err instanceof UnknownResourceError) return `error: ${prefix}${err.message}`;
  const e = err as Error;
  return `error: ${prefix}${e?.message ?? String(err)}`;
}

export const isNotFound = (err: unknown): boolean => err instanceof ApiRequestError && err.code === 404;

/** A failure at one step of handling one object, worded like kubectl's `error when creating "f.yaml"`. */
export class StepError extends Error {
  constructor(
    readonly step: string,
    readonly inner: unknown,
  ) {
    super(`${step}: ${String((inner as Error)?.message ?? inner)}`);
  }
}

export async function step<T>(name: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw new StepError(name, err);
  }
}
