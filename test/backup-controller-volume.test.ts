// Backup controller, Docker volumes: a volume on a registered Node backed up through a one-shot
// helper container (Slipway's own helper image: no helperImage is set), the source changed, restored by a Restore into a NEW volume and compared file by
// file; restoring over the source needs overwriteSource; a drill restores into a throwaway volume.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import Docker from 'dockerode';
import { startBackupPlatform, type BackupPlatform } from './helpers/backup.js';
import { buildTestImage, DOCKER_SOCKET, ensureDockerd, TEST_IMAGE } from './helpers/docker.js';
import { registerNode, waitFor } from './helpers/platform.js';

const NS = 'bk-vol';
const run = randomBytes(3).toString('hex');
const SOURCE = `bkvol-${run}-data`;
let p: BackupPlatform;
let docker: Docker;

/** Runs a shell script in a throwaway test-image container with `volume` at /data; its stdout. */
async function sh(volume: string, script: string): Promise<string> {
  const out: Buffer[] = [];
  const container = await docker.createContainer({ Image: TEST_IMAGE, Entrypoint: ['sh', '-c'], Cmd: [script], Labels: { 'slipway.test': 'bk-vol' }, HostConfig: { Binds: [`${volume}:/data`], NetworkMode: 'none' } });
  try {
    const stream = await container.attach({ stream: true, stdout: true, stderr: true });
    const done = new Promise((r) => (stream.on('end', r), stream.on('close', r)));
    docker.modem.demuxStream(stream, new Writable({ write: (c: Buffer, _e, cb) => (out.push(c), cb()) }), new Writable({ write: (_c, _e, cb) => cb() }));
    await container.start();
    const { StatusCode } = (await container.wait()) as { StatusCode: number };
    await done;
    assert.equal(StatusCode, 0, `script failed: ${script}`);
    return Buffer.concat(out).toString('utf8');
  } finally {
    await container.remove({ force: true });
  }
}

const LIST = 'cd /data && find . -type f | sort | while read f; do echo "$f $(md5sum < "$f")"; done';

before(async () => {
  docker = new Docker({ socketPath: await ensureDockerd() });
  await buildTestImage(docker);
  p = await startBackupPlatform(NS);
  await registerNode(p.api.client, 'vnode', { socket: DOCKER_SOCKET });
});
after(async () => {
  await p?.stop();
  const volumes = (await docker.listVolumes()).Volumes ?? [];
  for (const v of volumes.filter((v) => v.Name.startsWith(`bkvol-${run}`))) await docker.getVolume(v.Name).remove({ force: true }).catch(() => undefined);
});

test('a volume backup restores into a new volume with the same files; overwriting the source needs overwriteSource; a drill passes', async () => {
  await docker.createVolume({ Name: SOURCE });
  await sh(SOURCE, 'mkdir -p /data/sub && echo hello > /data/a.txt && head -c 100000 /dev/urandom > /data/sub/blob && echo "with space" > "/data/sub/b c.txt"');
  const original = await sh(SOURCE, LIST);
  assert.match(original, /\.\/sub\/blob/);
  await p.policy('files', { target: { type: 'volume', volume: { name: SOURCE, node: 'vnode' } }, schedule: '0 3 * * *', restoreDrill: { schedule: '0 4 * * *' } });
  const backup = await p.runBackup('files', 'files-1');
  assert.equal(backup.status?.phase, 'Succeeded', backup.status?.error);
  assert.match(backup.status?.artifact ?? '', /files-1\.tar\.gz$/);
  assert.match(backup.status?.toolVersion ?? '', /^tar in slipway\/backup-helper:/);

  await sh(SOURCE, 'echo changed > /data/a.txt && rm "/data/sub/b c.txt"');
  const r = await p.restore('r1', { backup: 'files-1', volume: `bkvol-${run}-copy` });
  assert.equal(r.status?.phase, 'Succeeded', r.status?.error);
  assert.equal(await sh(`bkvol-${run}-copy`, LIST), original, 'the new volume holds exactly the backed-up files');
  assert.notEqual(await sh(SOURCE, LIST), original, 'the source is untouched');

  const refused = await p.restore('r2', { backup: 'files-1', volume: SOURCE });
  assert.equal(refused.status?.phase, 'Failed');
  assert.match(refused.status?.error ?? '', /overwriteSource/);

  const next = await waitFor('nextDrillTime', async () => (await p.getPolicy('files')).status?.nextDrillTime);
  p.advance(Date.parse(next) - p.now() + 1000);
  const drilled = await waitFor('drill', async () => (await p.getPolicy('files')).status?.lastDrill, 60_000);
  assert.equal(drilled.result, 'Passed', drilled.message);
  await waitFor('the throwaway volume to be gone', async () => !((await docker.listVolumes()).Volumes ?? []).some((v) => v.Name.startsWith('slipway-drill-')));
});
