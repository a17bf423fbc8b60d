// A real container registry for tests: Debian's docker-registry on a free loopback port, with
// htpasswd (bcrypt) authentication. Loopback registries are trusted by Docker without TLS.

import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';

export interface TestRegistry {
  /** `127.0.0.1:PORT`, the host part of image references. */
  address: string;
  username: string;
  password: string;
  stop(): Promise<void>;
}

export async function startRegistry(username = 'deployer', password = 'correct horse battery'): Promise<TestRegistry> {
  const dir = mkdtempSync(join(tmpdir(), 'slw-registry-'));
  const port = await freePort();
  const htpasswd = execFileSync('htpasswd', ['-nbB', username, password]).toString().trim();
  writeFileSync(join(dir, 'htpasswd'), `${htpasswd}\n`);
  writeFileSync(
    join(dir, 'config.yml'),
    `version: 0.1
log: { level: warn }
storage: { filesystem: { rootdirectory: ${join(dir, 'data')} }, delete: { enabled: true } }
http: { addr: 127.0.0.1:${port} }
auth: { htpasswd: { realm: slipway-test, path: ${join(dir, 'htpasswd')} } }
`,
  );
  const child: ChildProcess = spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (d) => (log = (log + d.toString()).slice(-10_000)));
  const address = `127.0.0.1:${port}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    const status = await fetch(`http://${address}/v2/`).then((r) => r.status, () => 0);
    if (status === 401) break;
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`docker-registry did not start: ${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    address,
    username,
    password,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
