// Docker host connections against real engines: the local dockerd, and a second dockerd reached
// over a real sshd through one persistent SSH tunnel (API calls, container HTTP, logs, exec,
// events, host key pinning, reconnect after sshd restarts), plus the connection pool.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { connectDockerHost, type DockerHost, type NodeDockerSpec } from '../src/docker/docker-host.js';
import { DockerHosts } from '../src/docker/docker-hosts.js';
import { parseContainerEvent, watchContainerEvents, type ContainerEvent } from '../src/docker/docker-events.js';
import { fingerprint, parseHostKey, SshTunnel } from '../src/docker/ssh-tunnel.js';
import { freePort } from './helpers/ports.js';
import { buildTestImage, ensureDockerd, startSecondNode, TEST_IMAGE, type SecondNode } from './helpers/docker.js';

const run = promisify(execFile);
const RUN_ID = randomUUID();
const TEST_LABELS = { 'slipway.test': '1', 'slipway.test.run': RUN_ID };

async function removeTestContainers(docker: Docker): Promise<void> {
  const list = await docker.listContainers({ all: true, filters: { label: [`slipway.test.run=${RUN_ID}`] } });
  await Promise.all(list.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => {})));
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${lastError ? `: ${lastError}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Runs a command in a container through exec's hijacked stream; returns its output and exit code. */
async function exec(docker: Docker, id: string, cmd: string[]): Promise<{ stdout: string; stderr: string; exitCode: number }> {
  const execution = await docker.getContainer(id).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = await execution.start({ hijack: true, stdin: false });
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on('data', (d: Buffer) => out.push(d));
  stderr.on('data', (d: Buffer) => err.push(d));
  docker.modem.demuxStream(stream, stdout, stderr);
  await new Promise<void>((resolve, reject) => {
    stream.on('end', resolve);
    stream.on('close', resolve);
    stream.on('error', reject);
  });
  const info = await execution.inspect();
  return { stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), exitCode: info.ExitCode ?? -1 };
}

describe('local Docker host', () => {
  test('connects to the local socket and pings', async () => {
    const socket = await ensureDockerd();
    const host = await connectDockerHost({ socket });
    try {
      assert.equal(host.description, `unix://${socket}`);
      assert.equal(String(await host.docker.ping()), 'OK');
    } finally {
      await host.close();
    }
  });

  test('rejects a spec with neither or both of socket and ssh', async () => {
    await assert.rejects(connectDockerHost({}), /neither socket nor ssh/);
    const ssh = { host: '127.0.0.1', user: 'root', hostKey: 'ssh-ed25519 AAAA' };
    await assert.rejects(connectDockerHost({ socket: '/var/run/docker.sock', ssh }), /both socket and ssh/);
    await assert.rejects(connectDockerHost({ ssh }), /no SSH private key/);
  });
});

describe('remote Docker host over SSH', () => {
  let node: SecondNode;
  let host: DockerHost;

  before(async () => {
    await ensureDockerd();
    let t = Date.now();
    node = await startSecondNode();
    console.log(`second node (dockerd + sshd) ready in ${Date.now() - t} ms`);
    t = Date.now();
    await buildTestImage(node.docker);
    console.log(`test image ready on the second node in ${Date.now() - t} ms`);
    host = await connectDockerHost(node.dockerSpec, node.privateKey);
  });

  after(async () => {
    await removeTestContainers(node.docker).catch(() => {});
    await host?.close();
    await node?.stop();
  });

  test('pings and reads info of the second daemon through the tunnel', async () => {
    assert.equal(host.description, `ssh://root@127.0.0.1:${node.sshPort}${node.socketPath}`);
    assert.equal(String(await host.docker.ping()), 'OK');
    const info = await host.docker.info();
    assert.equal(info.DockerRootDir, '/tmp/slw-node2/data', 'the tunnel reaches the second daemon, not the local one');

    const samples: number[] = [];
    for (let i = 0; i < 50; i++) {
      const start = process.hrtime.bigint();
      await host.docker.ping();
      samples.push(Number(process.hrtime.bigint() - start) / 1e6);
    }
    samples.sort((a, b) => a - b);
    console.log(`ping over the SSH tunnel: p50 ${samples[25]!.toFixed(2)} ms, p90 ${samples[45]!.toFixed(2)} ms (50 calls)`);
  });

  test('calls stay fast while event streams are open', async () => {
    // Regression: docker-modem util.inspect()s the agent on every request; it must not walk the tunnel.
    const streams = await Promise.all(Array.from({ length: 20 }, () => host.docker.getEvents()));
    try {
      const samples: number[] = [];
      for (let i = 0; i < 21; i++) {
        const start = process.hrtime.bigint();
        await host.docker.ping();
        samples.push(Number(process.hrtime.bigint() - start) / 1e6);
      }
      samples.sort((a, b) => a - b);
      console.log(`ping with 20 event streams open: p50 ${samples[10]!.toFixed(2)} ms`);
      assert.ok(samples[10]! < 50, `ping p50 ${samples[10]} ms with open streams`);
    } finally {
      for (const stream of streams) (stream as unknown as { destroy(): void }).destroy();
    }
  });

  test('runs a container; HTTP, logs, exec and events work through the tunnel', async () => {
    const { docker } = host;
    const events: ContainerEvent[] = [];
    const abort = new AbortController();
    let eventsConnected = false;
    const watching = watchContainerEvents(docker, (e) => events.push(e), abort.signal, {
      onConnect: () => (eventsConnected = true),
    });
    try {
      await waitFor('the event stream', () => eventsConnected);
      const container = await docker.createContainer({
        Image: TEST_IMAGE,
        name: `slipway-test-${RUN_ID.slice(0, 8)}`,
        Env: ['APP_VERSION=7'],
        Labels: { ...TEST_LABELS, 'slipway.dev/managed-by': 'slipway', 'slipway.dev/service': 'web' },
        ExposedPorts: { '3000/tcp': {} },
        HostConfig: { PortBindings: { '3000/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] } },
      });
      await container.start();
      const inspected = await container.inspect();
      const hostPort = inspected.NetworkSettings.Ports['3000/tcp']?.[0]?.HostPort;
      assert.ok(hostPort, 'port 3000 is published');
      const base = `http://127.0.0.1:${hostPort}`;

      const root = await waitFor('the app to answer', async () => {
        const res = await fetch(`${base}/`);
        return res.status === 200 ? res.text() : undefined;
      });
      assert.equal(root.trim(), 'version=7');
      const healthy = await fetch(`${base}/cgi-bin/health`);
      assert.equal(healthy.status, 200);
      assert.equal((await healthy.text()).trim(), 'ok');

      // exec over the hijacked stream: make the app unhealthy.
      const result = await exec(docker, container.id, ['sh', '-c', 'touch /tmp/unhealthy && echo done']);
      assert.deepEqual(result, { stdout: 'done\n', stderr: '', exitCode: 0 });
      assert.equal((await fetch(`${base}/cgi-bin/health`)).status, 500);
      const failing = await exec(docker, container.id, ['sh', '-c', 'echo oops >&2; exit 3']);
      assert.deepEqual(failing, { stdout: '', stderr: 'oops\n', exitCode: 3 });

      // Logs, followed through the tunnel.
      const logStream = (await container.logs({ follow: true, stdout: true, stderr: true })) as unknown as NodeJS.ReadableStream;
      let logs = '';
      const sink = new PassThrough();
      sink.on('data', (d: Buffer) => (logs += d.toString()));
      docker.modem.demuxStream(logStream, sink, sink);
      await waitFor('the start log line', () => logs.includes('app starting version=7'));
      await fetch(`${base}/logs-test-${RUN_ID}`);
      await waitFor('the request log line', () => logs.includes(`url:/logs-test-${RUN_ID}`));
      (logStream as unknown as { destroy(): void }).destroy();

      const stopStart = Date.now();
      await container.stop({ t: 10 });
      assert.ok(Date.now() - stopStart < 5000, `docker stop took ${Date.now() - stopStart} ms`);

      const forContainer = () => events.filter((e) => e.id === container.id);
      await waitFor('start and die events', () =>
        ['start', 'die'].every((a) => forContainer().some((e) => e.action === a)),
      );
      const start = forContainer().find((e) => e.action === 'start')!;
      assert.equal(start.labels['slipway.dev/service'], 'web');
      assert.equal(start.labels['slipway.test.run'], RUN_ID);
      assert.equal(start.name, `slipway-test-${RUN_ID.slice(0, 8)}`);
      assert.equal(start.labels.name, undefined, 'docker attributes are not labels');
      assert.ok(forContainer().some((e) => e.action.startsWith('exec_start')), 'exec events arrive too');
      assert.equal(typeof forContainer().find((e) => e.action === 'die')!.exitCode, 'number');
    } finally {
      abort.abort();
      await watching;
      await removeTestContainers(docker);
    }
  });

  test('unmanaged containers produce no events', async () => {
    const events: ContainerEvent[] = [];
    const abort = new AbortController();
    let connected = false;
    const watching = watchContainerEvents(host.docker, (e) => events.push(e), abort.signal, {
      onConnect: () => (connected = true),
    });
    await waitFor('the event stream', () => connected);
    const container = await host.docker.createContainer({ Image: TEST_IMAGE, Labels: TEST_LABELS, Cmd: ['true'] });
    await container.start();
    await container.wait();
    await new Promise((r) => setTimeout(r, 300));
    abort.abort();
    await watching;
    await removeTestContainers(host.docker);
    assert.deepEqual(events.filter((e) => e.id === container.id), []);
  });

  test('a wrong pinned host key is refused with both fingerprints', async () => {
    const spec: NodeDockerSpec = { ssh: { ...node.dockerSpec.ssh!, hostKey: node.otherHostKey } };
    const fingerprintOf = async (line: string) => {
      const child = execFile('ssh-keygen', ['-l', '-f', '-']);
      child.stdin!.end(`${line}\n`);
      const output = await new Promise<string>((resolve) => {
        let text = '';
        child.stdout!.on('data', (d) => (text += d));
        child.on('close', () => resolve(text));
      });
      return output.split(' ')[1]!;
    };
    const expected = await fingerprintOf(node.otherHostKey);
    const actual = await fingerprintOf(node.hostKey);
    assert.equal(fingerprint(parseHostKey(node.hostKey).blob), actual, 'fingerprints match ssh-keygen -l');
    await assert.rejects(connectDockerHost(spec, node.privateKey), (err: Error) => {
      assert.equal(err.name, 'HostKeyMismatchError');
      assert.equal(err.message, `host key mismatch for 127.0.0.1:${node.sshPort}: expected ${expected}, got ${actual}`);
      return true;
    });
  });

  test('a wrong client key, a closed port or a malformed host key fails clearly', async () => {
    const { stdout } = await run('sh', ['-c', 'd=$(mktemp -d) && ssh-keygen -q -t ed25519 -N "" -f $d/k && cat $d/k && rm -r $d']);
    await assert.rejects(
      connectDockerHost(node.dockerSpec, stdout),
      new RegExp(`^Error: SSH connection to root@127\\.0\\.0\\.1:${node.sshPort} failed: All configured authentication methods failed`),
    );
    const closedPort = await freePort();
    await assert.rejects(
      connectDockerHost({ ssh: { ...node.dockerSpec.ssh!, port: closedPort } }, node.privateKey),
      new RegExp(`SSH connection to root@127\\.0\\.0\\.1:${closedPort} failed: .*ECONNREFUSED`),
    );
    const bad: NodeDockerSpec = { ssh: { ...node.dockerSpec.ssh!, hostKey: 'ssh-ed25519 bm90IGEga2V5' } };
    await assert.rejects(connectDockerHost(bad, node.privateKey), /not a ssh-ed25519 public key/);
  });

  test('the tunnel and the event stream reconnect after sshd restarts', async () => {
    const states: boolean[] = [];
    const own = await connectDockerHost(node.dockerSpec, node.privateKey, {
      onStateChange: (s) => states.push(s.connected),
    });
    const events: ContainerEvent[] = [];
    const disconnects: Error[] = [];
    let connects = 0;
    const abort = new AbortController();
    const watching = watchContainerEvents(own.docker, (e) => events.push(e), abort.signal, {
      onConnect: () => (connects += 1),
      onDisconnect: (err) => disconnects.push(err),
    });
    try {
      assert.equal(String(await own.docker.ping()), 'OK');
      await waitFor('the event stream', () => connects === 1);
      // One event before the outage, so the watcher has a point to resume from.
      const labels = { ...TEST_LABELS, 'slipway.dev/managed-by': 'slipway' };
      const before = await node.docker.createContainer({ Image: TEST_IMAGE, Labels: labels, Cmd: ['true'] });
      await waitFor('the create event', () => events.some((e) => e.id === before.id));

      await node.stopSshd();
      await waitFor('the disconnect to be noticed', () => states.includes(false));
      await assert.rejects(own.docker.ping(), /SSH connection to 127\.0\.0\.1:\d+ is down/);
      // Happens while the tunnel is down; the watcher must replay it after reconnecting.
      const during = await node.docker.createContainer({ Image: TEST_IMAGE, Labels: labels, Cmd: ['true'] });

      await node.startSshd();
      const restarted = Date.now();
      await waitFor('a ping after the restart', async () => String(await own.docker.ping()) === 'OK', 5000);
      console.log(`tunnel usable again ${Date.now() - restarted} ms after sshd restarted`);
      assert.equal(states.at(-1), true);
      await waitFor('the missed event to be replayed', () => events.some((e) => e.id === during.id), 15_000);
      assert.ok(connects >= 2 && disconnects.length >= 1);
      assert.equal(events.filter((e) => e.id === before.id && e.action === 'create').length, 1, 'no duplicates');
      // The shared host of the other tests reconnected as well.
      await waitFor('the shared host to reconnect', async () => String(await host.docker.ping()) === 'OK', 5000);
    } finally {
      abort.abort();
      await watching;
      await own.close();
      await removeTestContainers(node.docker);
    }
    await assert.rejects(own.docker.ping(), /SSH tunnel to 127\.0\.0\.1:\d+ is closed/);
  });

  test('keepalives notice a dead peer', async () => {
    const ssh = node.dockerSpec.ssh!;
    let down: Error | undefined;
    const tunnel = await SshTunnel.open({
      host: ssh.host,
      port: ssh.port!,
      username: ssh.user,
      privateKey: node.privateKey,
      hostKey: ssh.hostKey,
      keepaliveIntervalMs: 300,
      keepaliveCountMax: 2,
      onStateChange: (s) => (down = s.connected ? undefined : s.error),
    });
    try {
      (await tunnel.openStreamLocal(node.socketPath)).destroy();
      node.pauseSshd();
      const paused = Date.now();
      await waitFor('the dead peer to be noticed', () => down, 5000);
      console.log(`dead peer noticed after ${Date.now() - paused} ms (keepalive 300 ms x 2): ${down!.message}`);
      assert.equal(tunnel.connected, false);
    } finally {
      node.resumeSshd();
      await tunnel.close();
    }
  });

  test('the pool reuses a connection while the spec is unchanged', async () => {
    const pool = new DockerHosts();
    try {
      const [a, b] = await Promise.all([
        pool.get('node2', node.dockerSpec, node.privateKey),
        pool.get('node2', node.dockerSpec, node.privateKey),
      ]);
      assert.equal(a, b);
      assert.equal(String(await a.docker.ping()), 'OK');
      const reordered: NodeDockerSpec = { ssh: { ...node.dockerSpec.ssh!, hostKey: node.hostKey, user: 'root' } };
      assert.equal(await pool.get('node2', reordered, node.privateKey), a);
      const changed = await pool.get('node2', { socket: node.socketPath });
      assert.notEqual(changed, a);
      await assert.rejects(a.docker.ping(), /closed/, 'the replaced connection was closed');
      assert.equal(String(await changed.docker.ping()), 'OK');
    } finally {
      await pool.closeAll();
    }
  });
});

describe('DockerHosts pool', () => {
  function fakeConnect() {
    const calls: NodeDockerSpec[] = [];
    const closed: string[] = [];
    let fail = false;
    const connect = async (spec: NodeDockerSpec): Promise<DockerHost> => {
      calls.push(spec);
      await new Promise((r) => setTimeout(r, 20));
      if (fail) throw new Error('connect failed');
      const description = `${spec.socket}#${calls.length}`;
      return { docker: {} as Docker, description, close: async () => void closed.push(description) };
    };
    return { connect, calls, closed, setFail: (f: boolean) => (fail = f) };
  }

  test('shares concurrent attempts, replaces on change, retries after failure, drops', async () => {
    const fake = fakeConnect();
    const pool = new DockerHosts(fake.connect);
    const [a, b] = await Promise.all([pool.get('n1', { socket: '/a' }), pool.get('n1', { socket: '/a' })]);
    assert.equal(a, b);
    assert.equal(fake.calls.length, 1);
    assert.equal(await pool.get('n1', { socket: '/a' }, undefined), a);
    const c = await pool.get('n1', { socket: '/a' }, 'a key');
    assert.notEqual(c, a);
    assert.deepEqual(fake.closed, [a.description]);

    fake.setFail(true);
    await assert.rejects(pool.get('n2', { socket: '/b' }), /connect failed/);
    fake.setFail(false);
    const d = await pool.get('n2', { socket: '/b' });
    assert.equal(d.description, '/b#4');
    assert.deepEqual(pool.nodeNames().sort(), ['n1', 'n2']);

    await pool.drop('n1');
    assert.deepEqual(fake.closed, [a.description, c.description]);
    await pool.closeAll();
    assert.deepEqual(fake.closed, [a.description, c.description, d.description]);
    assert.deepEqual(pool.nodeNames(), []);
  });
});

test('parseContainerEvent keeps labels, name, exit code and the exact timeNano', () => {
  const line =
    '{"status":"die","id":"abc","from":"img","Type":"container","Action":"die","Actor":{"ID":"abc","Attributes":' +
    '{"exitCode":"137","image":"img","name":"shop.web-3-0","slipway.dev/managed-by":"slipway","slipway.dev/replica":"0"}},' +
    '"scope":"local","time":1732301234,"timeNano":1732301234123456789}';
  assert.deepEqual(parseContainerEvent(line), {
    action: 'die',
    id: 'abc',
    name: 'shop.web-3-0',
    exitCode: 137,
    labels: { 'slipway.dev/managed-by': 'slipway', 'slipway.dev/replica': '0' },
    timeNano: 1732301234123456789n,
  });
  assert.equal(parseContainerEvent('{"Type":"network","Action":"connect","Actor":{"ID":"n"}}'), undefined);
  assert.equal(parseContainerEvent('not json'), undefined);
});
