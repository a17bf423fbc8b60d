// Infrastructure backup engines against real systems: a Docker volume (files incl. a nested
// dir, a unicode name, a symlink and a 3 MiB random file) is tarred out through a helper
// container, the source changed, restored into a NEW volume and compared exactly; empty and
// missing volumes and existing restore targets fail clearly; the helper is Slipway's own image,
// built on the node (an explicit image missing on the node fails at once, naming image and node);
// on a second node reached through the SSH tunnel, with the helper image removed first, concurrent
// backups provision it with one build and the round trip succeeds. A real etcd (also one with authentication) is
// snapshotted, changed, restored into a fresh etcd and compared key by key; corrupted
// snapshots fail clearly.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createReadStream, createWriteStream, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { finished } from 'node:stream/promises';
import { PassThrough, Readable, Writable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { Etcd3 } from 'etcd3';
import { VolumeEngine, VOLUME_LABEL } from '../src/backup/engines/volume.js';
import { HELPER_IMAGE } from '../src/backup/engines/helper-image.js';
import { EtcdEngine, type RestoredEtcd } from '../src/backup/engines/etcd.js';
import { ToolError, type SpawnObserver } from '../src/backup/engines/engine.js';
import { volumeName } from '../src/controllers/service/container-spec.js';
import { buildTestImage, ensureDockerd, startSecondNode, TEST_IMAGE } from './helpers/docker.js';
import { startEtcd, type EtcdCluster } from './helpers/etcd.js';
import { connectDockerHost } from '../src/docker/docker-host.js';

let work: string;
let docker: Docker;
const run = randomBytes(3).toString('hex');
const volumes = new Set<string>();
const vol = (name: string) => {
  const v = volumeName('binfra', `t${run}`, name);
  volumes.add(v);
  return v;
};

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'slipway-binfra-'));
  const t0 = Date.now();
  docker = new Docker({ socketPath: await ensureDockerd() });
  await buildTestImage(docker);
  process.stderr.write(`# docker + test image ready in ${Date.now() - t0} ms\n`);
});

after(async () => {
  if (docker) {
    for (const v of volumes) {
      const leftovers = await docker.listContainers({ all: true, filters: { label: [`${VOLUME_LABEL}=${v}`] } });
      for (const c of leftovers) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
      await docker.getVolume(v).remove({ force: true }).catch(() => undefined);
    }
  }
  await rm(work, { recursive: true, force: true });
});

/** Runs a shell script in a throwaway test-image container with `volume` at /data. */
async function sh(volume: string, script: string, on: Docker = docker): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const sink = (into: Buffer[]) => new Writable({ write: (c: Buffer, _e, cb) => (into.push(c), cb()) });
  const container = await on.createContainer({
    Image: TEST_IMAGE,
    Entrypoint: ['sh', '-c'],
    Cmd: [script],
    Labels: { [VOLUME_LABEL]: volume, 'slipway.test': 'binfra' },
    HostConfig: { Binds: [`${volume}:/data`], NetworkMode: 'none' },
  });
  try {
    const stream = await container.attach({ stream: true, stdout: true, stderr: true });
    const done = new Promise((r) => (stream.on('end', r), stream.on('close', r)));
    on.modem.demuxStream(stream, sink(out), sink(err));
    await container.start();
    const { StatusCode } = (await container.wait()) as { StatusCode: number };
    await done;
    return { code: StatusCode, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
  } finally {
    await container.remove({ force: true });
  }
}

async function shOk(volume: string, script: string, on: Docker = docker): Promise<string> {
  const r = await sh(volume, script, on);
  assert.equal(r.code, 0, `script failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

/** Every entry (type, mode, size or link target) and an md5 of every file, sorted. */
const LISTING = `cd /data && find . -mindepth 1 | sort | while IFS= read -r f; do
  if [ -L "$f" ]; then echo "L $f -> $(readlink "$f")";
  elif [ -d "$f" ]; then echo "D $f $(stat -c %a "$f")";
  else echo "F $f $(stat -c '%a %s' "$f") $(md5sum < "$f" | cut -d' ' -f1)"; fi
done`;

const UNICODE = 'héllo wörld €✓ 日本語.txt';

async function fill(volume: string, on: Docker = docker): Promise<void> {
  await on.createVolume({ Name: volume });
  await shOk(
    volume,
    `set -e; cd /data
printf 'alpha\\n' > a.txt
mkdir -p nested/deeper && printf 'deep content\\n' > nested/deeper/file.txt
printf 'unicode name\\n' > '${UNICODE}'
: > empty-file
chmod 600 a.txt
ln -s nested/deeper/file.txt link
printf 'hidden\\n' > .hidden
dd if=/dev/urandom of=nested/big.bin bs=65536 count=48 2>/dev/null`,
    on,
  );
}

async function dumpToFile(fn: (out: NodeJS.WritableStream) => Promise<{ bytes: number; toolVersion: string }>, name: string) {
  const file = join(work, name);
  const out = createWriteStream(file);
  try {
    return { file, ...(await fn(out)) };
  } finally {
    out.end();
    await finished(out).catch(() => undefined);
  }
}

describe('volume engine', () => {
  const engine = () => new VolumeEngine();

  test('backs up a volume, restores it into a new volume exactly, source untouched', async () => {
    const src = vol('data');
    const dst = vol('restored');
    await fill(src);
    const before = await shOk(src, LISTING);
    assert.match(before, /nested\/deeper\/file\.txt/);
    assert.ok(before.includes(UNICODE), before);

    const t0 = Date.now();
    const { file, bytes } = await dumpToFile((out) => engine().dump({ docker, volume: src }, out), 'volume.tar');
    const dumpMs = Date.now() - t0;
    assert.ok(bytes > 3 * 1024 * 1024, `tar is ${bytes} bytes`);
    assert.equal(readFileSync(file).length, bytes);

    // Change the source after the backup.
    await shOk(src, `cd /data && printf 'changed\\n' > a.txt && rm -r nested && printf x > new.txt`);
    const changed = await shOk(src, LISTING);

    const t1 = Date.now();
    await engine().restore({ docker, volume: src }, createReadStream(file), { volume: dst });
    const restoreMs = Date.now() - t1;
    process.stderr.write(`# volume: dump ${bytes} bytes in ${dumpMs} ms, restore in ${restoreMs} ms\n`);

    assert.equal(await shOk(dst, LISTING), before);
    assert.equal(await shOk(dst, `cat '/data/${UNICODE}' /data/nested/deeper/file.txt /data/a.txt`), 'unicode name\ndeep content\nalpha\n');
    assert.equal(await shOk(src, LISTING), changed, 'the source volume was modified by the restore');
    const info = await docker.getVolume(dst).inspect();
    assert.equal(info.Labels?.['slipway.dev/managed-by'], 'slipway');
    const helper = await docker.getImage(HELPER_IMAGE).inspect();
    assert.equal(helper.Config?.Labels?.['slipway.dev/role'], 'backup-helper');
    // No helper container is left behind.
    const left = await docker.listContainers({ all: true, filters: { label: ['slipway.dev/role=backup', `${VOLUME_LABEL}=${src}`] } });
    assert.deepEqual(left, []);
  });

  test('a backup streams with backpressure into a slow consumer', async () => {
    const src = vol('slow');
    await fill(src);
    let received = 0;
    const slow = new Writable({
      highWaterMark: 1024,
      write(chunk: Buffer, _e, cb) {
        received += chunk.length;
        setTimeout(cb, 1);
      },
    });
    const { bytes } = await engine().dump({ docker, volume: src }, slow);
    slow.end();
    await finished(slow);
    assert.equal(received, bytes);
  });

  test('an empty volume and a missing volume give clear errors', async () => {
    const empty = vol('empty');
    await docker.createVolume({ Name: empty });
    const sink = new PassThrough().resume();
    await assert.rejects(engine().dump({ docker, volume: empty }, sink), /volume ".*-empty" is empty: nothing to back up/);
    await assert.rejects(engine().dump({ docker, volume: vol('missing') }, sink), /volume ".*-missing" does not exist on the node/);
    const left = await docker.listContainers({ all: true, filters: { label: [`${VOLUME_LABEL}=${empty}`] } });
    assert.deepEqual(left, []);
  });

  test('restore refuses an existing volume and the source; overwriteSource replaces contents', async () => {
    const src = vol('ow-src');
    const other = vol('ow-other');
    await fill(src);
    await docker.createVolume({ Name: other });
    await shOk(other, `printf stale > /data/stale.txt`);
    const { file } = await dumpToFile((out) => engine().dump({ docker, volume: src }, out), 'ow.tar');
    await assert.rejects(engine().restore({ docker, volume: src }, createReadStream(file), { volume: other }), /refusing to restore into an existing volume ".*-ow-other"/);
    await assert.rejects(engine().restore({ docker, volume: src }, createReadStream(file), { volume: src }), /refusing to restore into the source volume/);
    assert.equal(await shOk(other, 'cat /data/stale.txt'), 'stale');

    await engine().restore({ docker, volume: src }, createReadStream(file), { volume: other, overwriteSource: true });
    assert.equal(await shOk(other, LISTING), await shOk(src, LISTING));
  });

  test('an explicit helper image missing on the node fails at once, naming image and node, and is never pulled', async () => {
    const src = vol('noimg');
    await fill(src);
    const absent = `slipway-test/absent-helper:${run}`;
    const pinned = new VolumeEngine({ image: absent, node: 'node-a' });
    const named = new RegExp(`helper image slipway-test/absent-helper:${run} is not present on node node-a`);
    await assert.rejects(pinned.dump({ docker, volume: src }, new PassThrough().resume()), named);
    const dst = vol('noimg-copy');
    await assert.rejects(pinned.restore({ docker, volume: src }, Readable.from([Buffer.alloc(1024)]), { volume: dst }), named);
    await assert.rejects(docker.getVolume(dst).inspect(), (e: { statusCode?: number }) => e.statusCode === 404);
    await assert.rejects(docker.getImage(absent).inspect(), (e: { statusCode?: number }) => e.statusCode === 404);
  });

  test('a garbage or empty artifact fails and leaves no new volume', async () => {
    const src = vol('bad-src');
    const garbage = vol('bad-garbage');
    const empty = vol('bad-empty');
    await assert.rejects(
      engine().restore({ docker, volume: src }, Readable.from([randomBytes(4096)]), { volume: garbage }),
      (e: unknown) => e instanceof ToolError && /tar restore into volume ".*-bad-garbage" exited with code [1-9]/.test(e.message),
    );
    await assert.rejects(engine().restore({ docker, volume: src }, Readable.from([]), { volume: empty }), /the backup artifact is empty/);
    for (const v of [garbage, empty]) await assert.rejects(docker.getVolume(v).inspect(), (e: { statusCode?: number }) => e.statusCode === 404);
  });
});

/** Tag events of the helper image on `on` between `since` (unix seconds) and now: one per build. */
async function helperBuilds(on: Docker, since: number): Promise<number> {
  const events = await on.getEvents({ since, until: Math.floor(Date.now() / 1000) + 1, filters: { type: ['image'], event: ['tag'], image: [HELPER_IMAGE] } });
  let text = '';
  for await (const chunk of events as unknown as AsyncIterable<Buffer>) text += chunk.toString('utf8');
  return text.split('\n').filter((l) => l.includes(HELPER_IMAGE)).length;
}

describe('volume engine over SSH', () => {
  test('on a second node without the helper image, concurrent backups build it once and the round trip succeeds', async () => {
    const t0 = Date.now();
    const node = await startSecondNode();
    const host = await connectDockerHost(node.dockerSpec, node.privateKey);
    const local = node.docker; // the second dockerd's own socket, for setup and checks
    const src = volumeName('binfra', `s${run}`, 'data');
    const dst = volumeName('binfra', `s${run}`, 'restored');
    try {
      await buildTestImage(local);
      process.stderr.write(`# second node ready in ${Date.now() - t0} ms\n`);
      // Remove Slipway's helper images (only those: labelled as ours) so the backup must provision one.
      const helpers = await local.listImages({ filters: { reference: ['slipway/backup-helper'], label: ['slipway.dev/role=backup-helper'] } });
      for (const img of helpers) await local.getImage(img.Id).remove({ force: true }).catch((e: { statusCode?: number }) => assert.equal(e.statusCode, 404));
      await assert.rejects(local.getImage(HELPER_IMAGE).inspect(), (e: { statusCode?: number }) => e.statusCode === 404);
      await fill(src, local);
      const before = await shOk(src, LISTING, local);

      const since = Math.floor(Date.now() / 1000) - 1;
      const engine = new VolumeEngine({ node: 'node-2' });
      const t1 = Date.now();
      const [first, second] = await Promise.all([
        dumpToFile((out) => engine.dump({ docker: host.docker, volume: src }, out), 'ssh-1.tar'),
        dumpToFile((out) => new VolumeEngine({ node: 'node-2' }).dump({ docker: host.docker, volume: src }, out), 'ssh-2.tar'),
      ]);
      process.stderr.write(`# volume over ssh: helper image built and 2 x ${first.bytes} bytes dumped in ${Date.now() - t1} ms\n`);
      assert.equal(first.toolVersion, `tar in ${HELPER_IMAGE}`);
      assert.equal(second.bytes, first.bytes);
      const helper = await local.getImage(HELPER_IMAGE).inspect();
      assert.deepEqual(
        [helper.Config?.Labels?.['slipway.dev/managed-by'], helper.Config?.Labels?.['slipway.dev/role']],
        ['slipway', 'backup-helper'],
      );
      assert.equal(await helperBuilds(local, since), 1, 'concurrent first uses share one build');

      await engine.restore({ docker: host.docker, volume: src }, createReadStream(first.file), { volume: dst });
      assert.equal(await shOk(dst, LISTING, local), before);
      const left = await local.listContainers({ all: true, filters: { label: ['slipway.dev/role=backup', `${VOLUME_LABEL}=${src}`] } });
      assert.deepEqual(left, []);
    } finally {
      for (const v of [src, dst]) await local.getVolume(v).remove({ force: true }).catch(() => undefined);
      await host.close();
      await node.stop();
    }
  });
});

describe('etcd engine', () => {
  let cluster: EtcdCluster;
  let client: Etcd3;
  const restored: RestoredEtcd[] = [];
  const spawned: { tool: string; argv: string[] }[] = [];
  const onSpawn: SpawnObserver = ({ tool, argv }) => spawned.push({ tool, argv });

  before(async () => {
    const t0 = Date.now();
    cluster = await startEtcd();
    process.stderr.write(`# etcd started in ${Date.now() - t0} ms\n`);
    client = new Etcd3({ hosts: cluster.endpoints });
  });

  after(async () => {
    client?.close();
    for (const r of restored) await r.stop().catch(() => undefined);
    await cluster?.stop();
  });

  async function all(c: Etcd3): Promise<[string, string][]> {
    const res = await c.getAll().exec();
    return res.kvs.map((kv) => [kv.key.toString('hex'), kv.value.toString('hex')] as [string, string]).sort((a, b) => a[0].localeCompare(b[0]));
  }

  test('snapshots, restores into a fresh etcd and compares exactly; source untouched', async () => {
    await client.put('/slipway/apps/one').value('{"replicas":2}');
    await client.put('/slipway/apps/ünïcode ✓').value('värde');
    await client.put('/slipway/binary').value(Buffer.from([0, 1, 2, 255, 254]));
    for (let i = 0; i < 200; i++) await client.put(`/slipway/bulk/${String(i).padStart(3, '0')}`).value(`v${i}`.repeat(20));
    const before = await all(client);

    const engine = new EtcdEngine({ onSpawn });
    const target = { endpoints: cluster.endpoints };
    const t0 = Date.now();
    const { file, bytes, toolVersion } = await dumpToFile((out) => engine.dump(target, out), 'etcd.db');
    const dumpMs = Date.now() - t0;
    assert.match(toolVersion, /etcdctl version: 3\./);
    assert.ok(bytes > 0);

    await client.put('/slipway/apps/one').value('changed');
    await client.delete().key('/slipway/binary');
    await client.put('/slipway/after').value('x');
    const changed = await all(client);

    const t1 = Date.now();
    const r = await engine.restore(target, createReadStream(file), {});
    restored.push(r);
    process.stderr.write(`# etcd: snapshot ${bytes} bytes in ${dumpMs} ms, restore + start in ${Date.now() - t1} ms\n`);
    assert.notDeepEqual(r.endpoints, cluster.endpoints);
    const rc = new Etcd3({ hosts: r.endpoints });
    try {
      assert.deepEqual(await all(rc), before);
      // The restored member is a separate, writable cluster.
      await rc.put('/restored/only').value('1');
    } finally {
      rc.close();
    }
    assert.deepEqual(await all(client), changed, 'the source etcd was modified');
    assert.equal(await client.get('/restored/only').string(), null);

    await r.stop();
    const data = r.dataDir;
    assert.throws(() => readFileSync(join(data, 'member', 'snap', 'db')), /ENOENT/);
  });

  test('endpoints go through the environment; a dead first endpoint falls back to the next', async () => {
    const engine = new EtcdEngine({ onSpawn });
    spawned.length = 0;
    const dead = 'http://127.0.0.1:9';
    const { bytes } = await dumpToFile((out) => engine.dump({ endpoints: [dead, ...cluster.endpoints], user: undefined }, out), 'etcd2.db');
    assert.ok(bytes > 0);
    const saves = spawned.filter((s) => s.argv.includes('save') || s.argv.includes('health'));
    assert.deepEqual(saves.map((s) => s.argv.slice(1).join(' ')), ['endpoint health', 'endpoint health', 'snapshot save ' + saves[2]?.argv[3]]);
    for (const s of saves) assert.ok(!s.argv.some((a) => a.includes('127.0.0.1')), `endpoint on argv: ${s.argv.join(' ')}`);
  });

  test('an etcd with authentication: credentials via env only, wrong password fails without leaking it', async () => {
    const secured = await startEtcd();
    const password = `pw-${randomBytes(6).toString('hex')}`;
    // Only ever against this test's own etcd: the endpoint is set explicitly.
    const ctl = (...args: string[]) =>
      promisify(execFile)('etcdctl', args, { env: { ...process.env, ETCDCTL_API: '3', ETCDCTL_ENDPOINTS: secured.endpoints[0]! } });
    let restoredAuth: RestoredEtcd | undefined;
    try {
      await ctl('user', 'add', `root:${password}`);
      await ctl('role', 'add', 'root');
      await ctl('user', 'grant-role', 'root', 'root');
      await ctl('auth', 'enable');
      const authed = new Etcd3({ hosts: secured.endpoints, auth: { username: 'root', password } });
      try {
        await authed.put('/secret/key').value('guarded');
      } finally {
        authed.close();
      }
      const seen: { argv: string[]; cmdline: string }[] = [];
      const engine = new EtcdEngine({
        onSpawn: ({ pid, argv }) => {
          let cmdline = '';
          try {
            cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
          } catch {
            /* already exited */
          }
          seen.push({ argv, cmdline });
        },
      });
      const wrong = `wrong-${randomBytes(6).toString('hex')}`;
      await assert.rejects(engine.dump({ endpoints: secured.endpoints, user: 'root', password: wrong }, new PassThrough().resume()), (e: Error) => {
        assert.match(e.message, /authentication failed/);
        assert.ok(!e.message.includes(wrong), 'error leaks the password');
        return true;
      });
      const { file } = await dumpToFile((out) => engine.dump({ endpoints: secured.endpoints, user: 'root', password }, out), 'etcd-auth.db');
      assert.ok(seen.length >= 3);
      for (const s of seen) {
        assert.ok(!s.argv.join(' ').includes(password) && !s.cmdline.includes(password), `password on a command line: ${s.argv.join(' ')}`);
      }
      restoredAuth = await engine.restore({ endpoints: secured.endpoints }, createReadStream(file), {});
      // The snapshot carries the users and the auth setting.
      const rc = new Etcd3({ hosts: restoredAuth.endpoints, auth: { username: 'root', password } });
      try {
        assert.equal(await rc.get('/secret/key').string(), 'guarded');
      } finally {
        rc.close();
      }
    } finally {
      await restoredAuth?.stop();
      await secured.stop();
    }
  });

  test('unreachable etcd and corrupted or empty snapshots fail clearly', async () => {
    const engine = new EtcdEngine();
    await assert.rejects(engine.dump({ endpoints: ['http://127.0.0.1:9'] }, new PassThrough().resume()), /etcd snapshot failed on every endpoint:\nhttp:\/\/127\.0\.0\.1:9: etcdctl exited with code/);

    const { file } = await dumpToFile((out) => engine.dump({ endpoints: cluster.endpoints }, out), 'etcd3.db');
    const buf = readFileSync(file);
    const flipped = Buffer.from(buf);
    for (let i = 4096; i < 4096 + 64 && i < flipped.length; i++) flipped[i] = flipped[i]! ^ 0xff;
    const bad = join(work, 'corrupt.db');
    writeFileSync(bad, flipped);
    await assert.rejects(engine.restore({ endpoints: cluster.endpoints }, createReadStream(bad), {}), /etcd restore: the snapshot could not be restored: the snapshot is corrupt or not an etcd snapshot \(integrity check failed\): etcdctl exited with code 1: Error: expected sha256/);
    await assert.rejects(engine.restore({ endpoints: cluster.endpoints }, Readable.from([randomBytes(8192)]), {}), (e: Error) => {
      process.stderr.write(`# garbage etcd snapshot: ${e.message}\n`);
      return /etcd restore: the snapshot could not be restored: /.test(e.message) && !e.message.includes('"level"');
    });
    await assert.rejects(engine.restore({ endpoints: cluster.endpoints }, Readable.from([]), {}), /the backup artifact is empty/);
    await assert.rejects(engine.restore({ endpoints: cluster.endpoints }, createReadStream(file), { dataDir: work }), /already exists/);
  });
});
