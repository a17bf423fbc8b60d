// A loopback TCP listener whose every connection is piped to a stream opened on demand, e.g. an
// SSH channel to a remote node's loopback-only Caddy admin API. HTTP clients then talk to a real
// socket, and a channel that ends or fails simply ends the local connection.

import { createServer, type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';

export interface TcpForward {
  /** `127.0.0.1:<port>` to connect to. */
  readonly address: string;
  close(): Promise<void>;
}

export async function forwardTcp(open: () => Promise<Duplex>): Promise<TcpForward> {
  const connections = new Set<Socket>();
  const server = createServer((socket) => {
    connections.add(socket);
    socket.on('close', () => connections.delete(socket));
    socket.on('error', () => socket.destroy());
    open().then(
      (remote) => {
        if (socket.destroyed) return void remote.destroy();
        remote.on('error', () => socket.destroy());
        remote.on('close', () => socket.destroy());
        socket.on('close', () => remote.destroy());
        socket.pipe(remote).pipe(socket);
      },
      () => socket.destroy(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  server.unref();
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of connections) socket.destroy();
      }),
  };
}
