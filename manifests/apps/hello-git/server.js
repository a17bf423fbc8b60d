// The example app deployed from git (manifests/apps/hello-git): answers `/` with its release and
// `/health` with 200, and stops at once on SIGTERM.
import { createServer } from 'node:http';

const port = Number(process.env.PORT ?? 3000);
const release = process.env.SLIPWAY_RELEASE ?? 'unknown';
const server = createServer((req, res) => {
  if (req.url === '/health') res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
  else res.writeHead(200, { 'content-type': 'text/plain' }).end(`hello from a git build (release ${release})\n`);
});
server.listen(port, () => console.log(`hello-git listening on :${port} (release ${release})`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
