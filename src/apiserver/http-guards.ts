// Answers for requests that never reach koa: malformed HTTP, oversized headers, CONNECT and
// unmet Expect headers get a Kubernetes Status too, instead of a bare status line or a dropped
// connection. On the TLS server, a plain-HTTP request gets a 400 saying to use https://.

import { STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { ApiError, badRequest, methodNotAllowed } from './errors.js';

/** A whole HTTP/1.1 response carrying a Status, for sockets outside koa. */
function rawResponse(error: ApiError): string {
  const body = JSON.stringify(error.toStatus());
  return `HTTP/1.1 ${error.code} ${STATUS_CODES[error.code] ?? 'Error'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}

export function answerMalformedRequests(server: Server | HttpsServer): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    const responding = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent;
    if (err.code === 'ECONNRESET' || !socket.writable || responding) return void socket.destroy();
    const error =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? new ApiError(431, 'RequestEntityTooLarge', 'the request headers are too large')
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? new ApiError(408, 'Timeout', 'the request was not received in time')
          : badRequest(`malformed HTTP request (${err.code ?? 'parse error'})`);
    socket.end(rawResponse(error));
  });
  server.on('connect', (req: IncomingMessage, socket: Duplex) => {
    socket.on('error', () => {});
    socket.end(rawResponse(methodNotAllowed(String(req.method), String(req.url).slice(0, 200))));
  });
  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    const error = new ApiError(417, 'BadRequest', `unsupported Expect header ${JSON.stringify(String(req.headers.expect).slice(0, 100))}`);
    res.writeHead(error.code, { 'Content-Type': 'application/json', Connection: 'close' });
    res.end(JSON.stringify(error.toStatus()));
  });
}

/**
 * A plain-HTTP request on the TLS port fails the handshake with OpenSSL's "http request" error;
 * answer it in plain HTTP (as Go's servers do) so the client sees why, then close.
 */
export function answerPlainHttpOnTls(server: HttpsServer): void {
  server.on('tlsClientError', (err: NodeJS.ErrnoException, tlsSocket: TLSSocket) => {
    const raw = (tlsSocket as TLSSocket & { _parent?: Duplex })._parent;
    if (err.code !== 'ERR_SSL_HTTP_REQUEST' || !raw?.writable) return void tlsSocket.destroy();
    raw.on('error', () => {});
    raw.end(rawResponse(badRequest('the Slipway API server only speaks HTTPS on this port: use an https:// URL')));
  });
}
