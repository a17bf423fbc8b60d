// The example app of `make up` (image slipway/hello:1): answers `/` with its release and `/health`
// with 200, logs each request, and stops at once on SIGTERM.
import { createServer } from 'node:http';

const port = Number(process.env.PORT ?? 3000);
const release = process.env.SLIPWAY_RELEASE ?? 'unknown';
const server = createServer((req, res) => {
  console.log(`${req.method} ${req.url}`);
  if (req.url === '/health') {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
  } else {
    res.writeHead(200, { 'content-type': 'text/plain' }).end(`hello from slipway (release ${release})\n`);
  }
});
server.listen(port, () => console.log(`hello listening on :${port} (release ${release})`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
