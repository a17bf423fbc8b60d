// The shape of one audit record, shared by the API server (which writes and queries them) and
// slipctl (which prints them).

/** One audited request. Never carries a request or response body. */
export interface AuditRecord {
  /** When the answer was decided (RFC 3339, UTC, milliseconds). */
  time: string;
  requestId?: string;
  /** The authenticated user; absent when the request was not authenticated. */
  user?: string;
  tokenId?: string;
  sourceIP?: string;
  verb: string;
  group?: string;
  resource?: string;
  subresource?: string;
  namespace?: string;
  name?: string;
  /** The HTTP status code of the answer (499: the client went away before any answer). */
  code: number;
  userAgent?: string;
  /** Present (true) for `dryRun=All` requests, which changed nothing. */
  dryRun?: boolean;
}
