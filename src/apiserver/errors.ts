// The API server's one error type. Every failure a client can see is an ApiError,
// rendered as a Kubernetes `Status` object by the error middleware (see server.ts).

import type { Status, StatusCause } from '../api/types.js';

export type Reason =
  | 'BadRequest'
  | 'Unauthorized'
  | 'Forbidden'
  | 'NotFound'
  | 'MethodNotAllowed'
  | 'NotAcceptable'
  | 'AlreadyExists'
  | 'Conflict'
  | 'Gone'
  | 'Expired'
  | 'RequestEntityTooLarge'
  | 'UnsupportedMediaType'
  | 'Invalid'
  | 'TooManyRequests'
  | 'InternalError'
  | 'ServiceUnavailable'
  | 'Timeout';

export interface ErrorDetails {
  name?: string;
  group?: string;
  kind?: string;
  causes?: StatusCause[];
  retryAfterSeconds?: number;
}

export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: Reason,
    message: string,
    readonly details?: ErrorDetails,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  toStatus(): Status {
    const status: Status = {
      apiVersion: 'v1',
      kind: 'Status',
      metadata: {},
      status: 'Failure',
      message: this.message,
      reason: this.reason,
      code: this.code,
    };
    if (this.details && Object.keys(this.details).length) status.details = this.details;
    return status;
  }
}

/** Identifies the object an error is about, for `Status.details` and messages. */
export interface Subject {
  group: string;
  /** The plural resource name, as Kubernetes names it in messages (e.g. `services.slipway.dev`). */
  resource: string;
  kind: string;
  name?: string;
}

const qualified = (s: Subject) => (s.group ? `${s.resource}.${s.group}` : s.resource);
const subjectDetails = (s: Subject): ErrorDetails => ({ group: s.group, kind: s.resource, ...(s.name ? { name: s.name } : {}) });

export const badRequest = (message: string, causes?: StatusCause[]) =>
  new ApiError(400, 'BadRequest', message, causes ? { causes } : undefined);

export const notFound = (s: Subject) =>
  new ApiError(404, 'NotFound', `${qualified(s)} "${s.name ?? ''}" not found`, subjectDetails(s));

export const pathNotFound = (path: string) => new ApiError(404, 'NotFound', `the server could not find the requested resource (${path})`);

export const methodNotAllowed = (method: string, what: string) =>
  new ApiError(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource: ${method} ${what}`);

export const alreadyExists = (s: Subject) =>
  new ApiError(409, 'AlreadyExists', `${qualified(s)} "${s.name}" already exists`, subjectDetails(s));

export const conflict = (s: Subject, why: string) =>
  new ApiError(
    409,
    'Conflict',
    `Operation cannot be fulfilled on ${qualified(s)} "${s.name}": ${why}`,
    subjectDetails(s),
  );

export const staleConflict = (s: Subject) =>
  conflict(s, 'the object has been modified; please apply your changes to the latest version and try again');

export const expired = (message: string) => new ApiError(410, 'Expired', message);

export const tooLarge = (limit: number, what = 'the request body is') =>
  new ApiError(413, 'RequestEntityTooLarge', `${what} larger than the limit of ${limit} bytes`);

export const unsupportedMediaType = (type: string, supported: string[]) =>
  new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unsupported media type "${type}"; supported: ${supported.join(', ')}`);

export const forbidden = (s: Subject, why: string) =>
  new ApiError(403, 'Forbidden', `${qualified(s)} "${s.name ?? ''}" is forbidden: ${why}`, subjectDetails(s));

/** Causes reported per 422: a body with 100,000 bad labels must not get a 60 MB answer. */
const MAX_CAUSES = 100;

/** 422 with one cause per failing field, e.g. `spec.replicas`, `spec.env[2].name`. */
export const invalid = (s: Subject, allCauses: StatusCause[]) => {
  const causes = allCauses.slice(0, MAX_CAUSES);
  const more = allCauses.length - causes.length;
  return new ApiError(
    422,
    'Invalid',
    `${s.kind}.${s.group} "${s.name ?? ''}" is invalid: ${causes.map((c) => (c.field ? `${c.field}: ${c.message}` : c.message)).join(', ')}${more > 0 ? `, and ${more} more errors` : ''}`,
    { ...subjectDetails(s), kind: s.kind, causes },
  );
};

export const tooManyRequests = (retryAfterSeconds: number) =>
  new ApiError(429, 'TooManyRequests', 'too many requests in flight, please try again later', { retryAfterSeconds });

export const internal = (message = 'an internal error occurred') => new ApiError(500, 'InternalError', message);

export const unavailable = (message: string) => new ApiError(503, 'ServiceUnavailable', message);

