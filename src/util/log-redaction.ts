// pino `redact` settings shared by the Slipway daemons: any log field that may carry a secret
// (tokens, passwords, keys, Secret data, Authorization headers, container environments) is
// replaced before the line is written.

import type { LoggerOptions } from 'pino';

const SECRET_FIELDS = ['token', 'password', 'privateKey', 'secret', 'authorization', 'data', 'stringData', 'env', 'Env', 'auth'];

export const REDACT: LoggerOptions['redact'] = {
  paths: [
    ...SECRET_FIELDS,
    ...SECRET_FIELDS.map((f) => `*.${f}`),
    ...SECRET_FIELDS.map((f) => `*.*.${f}`),
    'req.headers.authorization',
    'req.headers.cookie',
    'headers.authorization',
  ],
  censor: '[redacted]',
};
