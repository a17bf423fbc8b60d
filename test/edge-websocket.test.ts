// WebSockets through a real Caddy running the rendered config: the upgrade passes through to the
// app, an unchanged config is not sent (the connection stays open), and a changed one is loaded,
// which in Caddy 2.6 closes the connection: the reason the edge controller loads as rarely as it can.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { CaddyAdmin, ensureConfig } from '../src/edge/caddy-admin.js';
import { renderCaddyConfig } from '../src/edge/caddy-config.js';
import type { EdgeSite } from '../src/edge/sites.js';
import { startCaddy, type TestCaddy } from './helpers/caddy.js';
import { waitFor } from './helpers/platform.js';

let caddy: TestCaddy;
let admin: CaddyAdmin;
let app: Server;

/** An app that accepts WebSocket upgrades and echoes every byte. */
function echoApp(): Promise<Server> {
  const server = createServer((_req, res) => res.end('plain http\n'));
  server.on('upgrade', (req, socket: Socket) => {
    const accept = createHash('sha1').update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    socket.on('data', (d) => socket.write(d));
    socket.on('error', () => socket.destroy());
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/** Opens a WebSocket through Caddy's HTTP port; resolves with the upgraded socket. */
function openThroughCaddy(host: string): Promise<{ status: number; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: caddy.httpPort, path: '/socket', headers: { host, connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' } });
    req.on('upgrade', (res, socket) => resolve({ status: res.statusCode ?? 0, socket }));
    req.on('response', (res) => reject(new Error(`no upgrade: HTTP ${res.statusCode}`)));
    req.on('error', reject);
    req.end();
  });
}

function echo(socket: Socket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    socket.once('data', (d) => resolve(d.toString()));
    socket.once('error', reject);
    socket.write(text);
  });
}

const site = (id: string, host: string): EdgeSite => ({ id, hosts: [host], tls: 'off', upstreams: [{ host: '127.0.0.1', port: (app.address() as AddressInfo).port }], stickySessions: false, maxBodyBytes: 1 << 20 });

before(async () => {
  caddy = await startCaddy();
  admin = new CaddyAdmin(caddy.adminAddress);
  app = await echoApp();
});

after(async () => {
  await admin?.close();
  await caddy?.stop();
  app?.close();
});

test('a WebSocket passes through Caddy, survives an unchanged config and is closed by a load', async () => {
  const options = { adminAddress: caddy.adminAddress, httpPort: caddy.httpPort, httpsPort: caddy.httpsPort };
  const config = renderCaddyConfig([site('service:ws/chat', 'chat.test')], options);
  assert.deepEqual(await ensureConfig(admin, config), { loaded: true, wasEmpty: true });

  const { status, socket } = await openThroughCaddy('chat.test');
  assert.equal(status, 101);
  assert.equal(await echo(socket, 'hello'), 'hello');
  let closed = false;
  socket.on('close', () => (closed = true));

  assert.deepEqual(await ensureConfig(admin, renderCaddyConfig([site('service:ws/chat', 'chat.test')], options)), { loaded: false, wasEmpty: false });
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(closed, false);
  assert.equal(await echo(socket, 'still here'), 'still here');

  assert.equal((await ensureConfig(admin, renderCaddyConfig([site('service:ws/chat', 'chat.test'), site('service:ws/other', 'other.test')], options))).loaded, true);
  await waitFor('the WebSocket closed by the load', () => closed, 5000, 20);
});
