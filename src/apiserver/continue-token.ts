// `continue` tokens for paged lists: the revision the first page was read at and the next key.
// Opaque to clients (base64url JSON), checked on the way back in.

import { badRequest } from './errors.js';

export interface ContinueState {
  revision: number;
  startKey: string;
}

export function encodeContinue(state: ContinueState): string {
  return Buffer.from(JSON.stringify({ v: 1, rv: state.revision, start: state.startKey })).toString('base64url');
}

export function decodeContinue(token: string, prefix: string): ContinueState {
  let parsed: any;
  try {
    parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw badRequest('invalid continue token: not produced by this server');
  }
  if (
    !parsed ||
    parsed.v !== 1 ||
    !Number.isSafeInteger(parsed.rv) ||
    parsed.rv <= 0 ||
    typeof parsed.start !== 'string' ||
    !parsed.start.startsWith(prefix)
  ) {
    throw badRequest('invalid continue token: it does not belong to this list');
  }
  return { revision: parsed.rv, startKey: parsed.start };
}
