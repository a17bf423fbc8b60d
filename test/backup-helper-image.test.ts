// The default volume-backup helper image's recipe: its build context is a tar that GNU tar reads
// back as exactly a Dockerfile (FROM scratch, Slipway's labels), bin/busybox and the applet links;
// the ELF check tells the static busybox from a dynamically linked binary. Building it on real
// nodes is covered by backup-engines-infra.test.ts.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { elfInfo, HELPER_IMAGE, helperBuildContext } from '../src/backup/engines/helper-image.js';

const run = promisify(execFile);
let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'slw-helper-image-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('the helper image is versioned in Slipway\'s namespace', () => {
  assert.match(HELPER_IMAGE, /^slipway\/backup-helper:\d+\.\d+\.\d+/);
});

test('the build context holds exactly the Dockerfile, bin/busybox and the sh, tar and rm links', async () => {
  const busybox = Buffer.from('not really busybox, but 600 bytes long'.padEnd(600, '.'));
  const file = join(dir, 'context.tar');
  await writeFile(file, helperBuildContext(busybox));
  const { stdout } = await run('tar', ['-tvf', file]);
  const entries = stdout
    .trim()
    .split('\n')
    .map((line) => {
      const f = line.split(/\s+/);
      return `${f[0]} ${f[1]} ${f[2]} ${f.slice(5).join(' ')}`;
    });
  const dockerfileSize = (await run('tar', ['-xOf', file, 'Dockerfile'])).stdout.length;
  assert.deepEqual(entries, [
    `-rw-r--r-- 0/0 ${dockerfileSize} Dockerfile`,
    'drwxr-xr-x 0/0 0 bin/',
    '-rwxr-xr-x 0/0 600 bin/busybox',
    'lrwxrwxrwx 0/0 0 bin/sh -> busybox',
    'lrwxrwxrwx 0/0 0 bin/tar -> busybox',
    'lrwxrwxrwx 0/0 0 bin/rm -> busybox',
  ]);
  assert.deepEqual(Buffer.from((await run('tar', ['-xOf', file, 'bin/busybox'], { encoding: 'buffer' })).stdout), busybox);
  const dockerfile = (await run('tar', ['-xOf', file, 'Dockerfile'])).stdout;
  assert.equal(
    dockerfile,
    'FROM scratch\nCOPY bin/ /bin/\nENV PATH=/bin\nLABEL slipway.dev/managed-by="slipway" slipway.dev/role="backup-helper" slipway.dev/helper-recipe="1"\n',
  );
  // Deterministic: the same busybox gives the same bytes.
  assert.deepEqual(helperBuildContext(busybox), helperBuildContext(busybox));
});

test('the ELF check accepts the static busybox and tells a dynamically linked binary apart', async () => {
  const arch = { x64: 'x86_64', arm64: 'aarch64' }[process.arch as string];
  const busybox = elfInfo(await readFile('/bin/busybox'));
  assert.deepEqual(busybox, { ...(arch ? { arch } : {}), static: true });
  const node = elfInfo(await readFile(process.execPath));
  assert.equal(node?.static, false, `${process.execPath} is dynamically linked`);
  assert.equal(elfInfo(Buffer.from('#!/bin/sh\necho not an ELF binary\n'.padEnd(80))), undefined);
});
