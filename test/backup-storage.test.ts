// Backup storage: the local-directory and SFTP stores (against a real OpenSSH sshd on loopback)
// with atomic streamed writes, read-back verification that catches corruption, truncation and
// empty artifacts, path validation, host key pinning and reconnects; and the pure GFS retention.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { open, readdir, rm, stat, truncate, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { fingerprint, HostKeyMismatchError, parseHostKey } from '../src/docker/ssh-tunnel.js';
import { LocalStore } from '../src/backup/local-store.js';
import { ArtifactNotFoundError, digestStream, InvalidArtifactPathError, type BackupStore } from '../src/backup/location.js';
import { DEFAULT_RETENTION, selectRetained, type BackupRecord, type RetentionPolicy } from '../src/backup/retention.js';
import { SftpStore } from '../src/backup/sftp-store.js';
import { verifyArtifact } from '../src/backup/verify.js';
import { startSftpServer, type SftpServer } from './helpers/sftp.js';

const MB = 1024 * 1024;
const BIG = 20 * MB;

/** A stream of `size` random bytes, hashed independently as it is produced. */
function randomSource(size: number, chunk = 64 * 1024): { stream: Readable; expected: () => { size: number; sha256: string } } {
  const hash = createHash('sha256');
  let produced = 0;
  function* gen() {
    while (produced < size) {
      const buf = randomBytes(Math.min(chunk, size - produced));
      produced += buf.length;
      hash.update(buf);
      yield buf;
    }
  }
  let digest: string | undefined;
  return {
    stream: Readable.from(gen()),
    expected: () => {
      assert.equal(produced, size, 'the source was not fully consumed');
      digest ??= hash.digest('hex');
      return { size: produced, sha256: digest };
    },
  };
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath ?? (e as unknown as { path: string }).path, e.name));
}

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

async function flipByte(file: string, offset: number): Promise<void> {
  const fh = await open(file, 'r+');
  try {
    const buf = Buffer.alloc(1);
    await fh.read(buf, 0, 1, offset);
    buf[0] ^= 0xff;
    await fh.write(buf, 0, 1, offset);
  } finally {
    await fh.close();
  }
}

interface StoreCase {
  name: string;
  setup(): Promise<{ store: BackupStore; diskRoot: string; cleanup(): Promise<void> }>;
}

let sftpServer: SftpServer | undefined;
const sftpOptions = (server: SftpServer, hostKey = server.hostKey) => ({
  host: server.host,
  port: server.port,
  username: server.user,
  privateKey: server.privateKey,
  hostKey,
  basePath: join(server.root, 'backups'),
  readyTimeoutMs: 5000,
});

const cases: StoreCase[] = [
  {
    name: 'local directory store',
    async setup() {
      const dir = await mkdtemp(join(tmpdir(), 'slw-localstore-'));
      const diskRoot = join(dir, 'backups');
      return { store: new LocalStore(diskRoot), diskRoot, cleanup: () => rm(dir, { recursive: true, force: true }) };
    },
  },
  {
    name: 'SFTP store (real sshd)',
    async setup() {
      sftpServer ??= await startSftpServer();
      const store = await SftpStore.open(sftpOptions(sftpServer));
      return { store, diskRoot: join(sftpServer.root, 'backups'), cleanup: async () => undefined };
    },
  },
];

after(async () => {
  await sftpServer?.stop();
});

for (const c of cases) {
  describe(c.name, () => {
    let store: BackupStore;
    let diskRoot: string;
    let cleanup: () => Promise<void>;
    const path = 'app-a/db/2026-11-22T0300Z.dump';
    let written: { size: number; sha256: string };

    before(async () => {
      ({ store, diskRoot, cleanup } = await c.setup());
    });
    after(async () => {
      await store.close();
      await cleanup();
    });

    it('puts a 20 MB stream atomically, measuring size and sha256 while streaming', async () => {
      const source = randomSource(BIG);
      const started = Date.now();
      written = await store.put(path, source.stream);
      const ms = Date.now() - started;
      assert.deepEqual(written, source.expected());
      assert.equal(written.size, BIG);
      // Only the final file exists: no partial upload left behind.
      const files = await filesUnder(diskRoot);
      assert.deepEqual(files, [join(diskRoot, path)]);
      const st = await stat(join(diskRoot, path));
      assert.equal(st.size, BIG);
      assert.equal(st.mode & 0o777, 0o600, 'artifact file mode');
      assert.equal((await stat(join(diskRoot, 'app-a/db'))).mode & 0o777, 0o700, 'folder mode');
      assert.equal((await stat(join(diskRoot, 'app-a'))).mode & 0o777, 0o700, 'folder mode');
      console.log(`# ${c.name}: put 20 MB in ${ms} ms (${store.describe()})`);
    });

    it('stats, lists, gets and replaces artifacts', async () => {
      assert.deepEqual(await store.stat(path), { size: BIG });
      assert.equal(await store.stat('app-a/db/none.dump'), undefined);
      assert.equal(await store.stat('no/such/folder.dump'), undefined);

      const small = await store.put('app-a/files/2026-11-22.tar', Readable.from([Buffer.from('hello '), Buffer.from('world')]));
      assert.equal(small.size, 11);
      assert.equal(small.sha256, createHash('sha256').update('hello world').digest('hex'));
      await store.put('app-b/db/x.dump', Readable.from([Buffer.from('b')]));

      const all = await store.list('');
      assert.deepEqual(
        all.map((a) => [a.path, a.size]),
        [
          [path, BIG],
          ['app-a/files/2026-11-22.tar', 11],
          ['app-b/db/x.dump', 1],
        ],
      );
      for (const a of all) {
        assert.ok(a.modified instanceof Date && Math.abs(a.modified.getTime() - Date.now()) < 120_000, `modified of ${a.path}`);
      }
      assert.deepEqual((await store.list('app-a/')).map((a) => a.path), [path, 'app-a/files/2026-11-22.tar']);
      assert.deepEqual((await store.list('app-a/db/2026-')).map((a) => a.path), [path]);
      assert.deepEqual((await store.list('app-a/fi')).map((a) => a.path), ['app-a/files/2026-11-22.tar']);
      assert.deepEqual(await store.list('app-c/'), []);

      const back = await digestStream(await store.get(path));
      assert.deepEqual(back, written);

      // Replacing an existing artifact (rename over it) works and is whole.
      const again = await store.put('app-b/db/x.dump', Readable.from([Buffer.from('second version')]));
      assert.equal(again.size, 14);
      assert.equal((await readAll(await store.get('app-b/db/x.dump'))).toString(), 'second version');

      await assert.rejects(store.get('app-b/db/missing.dump'), ArtifactNotFoundError);
      await store.remove('app-b/db/x.dump');
      assert.equal(await store.stat('app-b/db/x.dump'), undefined);
      await store.remove('app-b/db/x.dump'); // removing a missing artifact is fine
      assert.deepEqual((await store.list('app-b')).map((a) => a.path), []);
    });

    it('a failing input stream leaves no artifact and no partial file', async () => {
      const failing = new Readable({
        read() {
          this.push(randomBytes(1024));
          setImmediate(() => this.destroy(new Error('database dump crashed')));
        },
      });
      await assert.rejects(store.put('app-a/db/broken.dump', failing), /database dump crashed/);
      assert.equal(await store.stat('app-a/db/broken.dump'), undefined);
      assert.ok(!(await filesUnder(diskRoot)).some((f) => f.includes('.partial-')), 'partial file left behind');
      // The store still works afterwards.
      assert.deepEqual(await store.stat(path), { size: BIG });
    });

    it('verifies a good artifact and reports corruption, truncation, empty and missing artifacts', async () => {
      assert.deepEqual(await verifyArtifact(store, path, written), { ok: true });

      const file = join(diskRoot, path);
      await flipByte(file, 12_345_678);
      const corrupt = await verifyArtifact(store, path, written);
      assert.equal(corrupt.ok, false);
      assert.match((corrupt as { reason: string }).reason, /^checksum mismatch/);
      await flipByte(file, 12_345_678);
      assert.deepEqual(await verifyArtifact(store, path, written), { ok: true });

      await truncate(file, BIG - 1000);
      const truncated = await verifyArtifact(store, path, written);
      assert.deepEqual(truncated, { ok: false, reason: `size ${BIG - 1000} differs from the ${BIG} bytes written` });

      await truncate(file, 0);
      assert.deepEqual(await verifyArtifact(store, path, written), { ok: false, reason: `artifact is empty: ${path} has 0 bytes` });

      const empty = await store.put('app-a/db/empty.dump', Readable.from([]));
      assert.equal(empty.size, 0);
      assert.equal(empty.sha256, createHash('sha256').digest('hex'));
      const emptyResult = await verifyArtifact(store, 'app-a/db/empty.dump', empty);
      assert.equal(emptyResult.ok, false);
      assert.match((emptyResult as { reason: string }).reason, /^artifact is empty/);

      await store.remove(path);
      const missing = await verifyArtifact(store, path, written);
      assert.equal(missing.ok, false);
      assert.match((missing as { reason: string }).reason, /^artifact is missing/);
    });

    it('refuses unsafe paths with a clear error', async () => {
      const bad = ['../escape.dump', 'a/../../escape.dump', '/etc/passwd', 'a\0b', '', 'a//b', './a', 'a/', 'a\\..\\b', 'x.dump.partial-0123456789abcdef'];
      for (const p of bad) {
        await assert.rejects(store.put(p, Readable.from([Buffer.from('x')])), InvalidArtifactPathError, `put ${JSON.stringify(p)}`);
        await assert.rejects(store.get(p), InvalidArtifactPathError, `get ${JSON.stringify(p)}`);
        await assert.rejects(store.stat(p), InvalidArtifactPathError, `stat ${JSON.stringify(p)}`);
        await assert.rejects(store.remove(p), InvalidArtifactPathError, `remove ${JSON.stringify(p)}`);
      }
      await assert.rejects(store.put('../x', Readable.from([])), /invalid artifact path "..\/x": '..' segments are not allowed/);
      await assert.rejects(store.put('/abs', Readable.from([])), /must be relative/);
      await assert.rejects(store.put('a\0b', Readable.from([])), /NUL/);
      for (const p of ['../', '/', 'a/../', '\0']) await assert.rejects(store.list(p), InvalidArtifactPathError, `list ${JSON.stringify(p)}`);
      // Nothing was written outside (or inside) the store.
      assert.ok(!(await filesUnder(join(diskRoot, '..'))).some((f) => f.endsWith('escape.dump') || f.endsWith('/x')));
    });
  });
}

describe('SFTP store connection', () => {
  let server: SftpServer;
  before(async () => {
    server = await startSftpServer();
  });
  after(async () => {
    await server.stop();
  });

  it('refuses an unknown host key, naming both fingerprints', async () => {
    const expected = fingerprint(parseHostKey(server.otherHostKey).blob);
    const actual = fingerprint(parseHostKey(server.hostKey).blob);
    await assert.rejects(SftpStore.open(sftpOptions(server, server.otherHostKey)), (err: Error) => {
      assert.ok(err instanceof HostKeyMismatchError, `${err.name}: ${err.message}`);
      assert.equal(err.expectedFingerprint, expected);
      assert.equal(err.actualFingerprint, actual);
      assert.ok(err.message.includes(expected) && err.message.includes(actual), err.message);
      return true;
    });
    await assert.rejects(SftpStore.open(sftpOptions(server, 'ssh-ed25519 not-base64!')), /invalid host key/);
  });

  it('fails clearly while sshd is down and reconnects by itself once it is back', async () => {
    const store = await SftpStore.open(sftpOptions(server));
    try {
      await store.put('r/one.dump', Readable.from([Buffer.from('one')]));

      // Restart while idle: the next operation notices the dropped connection and reconnects
      // transparently (idempotent operations are retried once on a fresh connection).
      await server.stopSshd();
      await server.startSshd();
      assert.deepEqual(await store.stat('r/one.dump'), { size: 3 });
      assert.deepEqual((await store.list('r/')).map((a) => a.path), ['r/one.dump']);

      // While sshd is down: a clear error, no hang.
      await server.stopSshd();
      const started = Date.now();
      await assert.rejects(store.stat('r/one.dump'), /SFTP connection to root@127\.0\.0\.1:\d+ failed: .*ECONNREFUSED/);
      await assert.rejects(store.put('r/two.dump', Readable.from([Buffer.from('two')])), /ECONNREFUSED/);
      assert.ok(Date.now() - started < 5000, 'errors came quickly');

      // Back up: the next call succeeds without reopening the store.
      await server.startSshd();
      assert.deepEqual(await store.stat('r/one.dump'), { size: 3 });
      const two = await store.put('r/two.dump', Readable.from([Buffer.from('two')]));
      assert.deepEqual(await verifyArtifact(store, 'r/two.dump', two), { ok: true });
    } finally {
      await store.close();
    }
    await assert.rejects(store.stat('r/one.dump'), /closed/);
  });
});

// ---------------------------------------------------------------- retention

const DAY = 86_400_000;

/** Brute-force ISO week key of a UTC date (the classic Thursday rule). */
function isoWeekKey(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const dayNum = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - dayNum);
  const yearStart = Date.UTC(t.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((t.getTime() - yearStart) / DAY + 1) / 7);
  return `${t.getUTCFullYear()}-W${week}`;
}

/** The expected GFS keep set in UTC, computed the simple way. */
function expectedKeep(backups: BackupRecord[], policy: RetentionPolicy, now: Date): Set<string> {
  const verified = backups.filter((b) => b.verified);
  const newestOf = (match: (b: BackupRecord) => boolean) =>
    verified.filter(match).sort((a, b) => b.time.getTime() - a.time.getTime())[0];
  const keep = new Set<string>();
  for (let k = 0; k < policy.daily; k++) {
    const day = new Date(now.getTime() - k * DAY).toISOString().slice(0, 10);
    const b = newestOf((x) => x.time.toISOString().slice(0, 10) === day);
    if (b) keep.add(b.name);
  }
  for (let k = 0; k < policy.weekly; k++) {
    const week = isoWeekKey(new Date(now.getTime() - k * 7 * DAY));
    const b = newestOf((x) => isoWeekKey(x.time) === week);
    if (b) keep.add(b.name);
  }
  for (let k = 0; k < policy.monthly; k++) {
    const month = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - k, 1)).toISOString().slice(0, 7);
    const b = newestOf((x) => x.time.toISOString().slice(0, 7) === month);
    if (b) keep.add(b.name);
  }
  const newest = newestOf(() => true);
  if (newest) keep.add(newest.name);
  return keep;
}

describe('GFS retention', () => {
  const now = new Date('2026-11-22T12:00:00Z');
  // 400 daily verified backups at 03:00, a second earlier one every 5th day, and unverified
  // ones that would otherwise win their day (later the same day), plus an unverified newest one.
  const history: BackupRecord[] = [];
  for (let i = 0; i < 400; i++) {
    const midnight = Date.UTC(2026, 10, 22) - i * DAY;
    history.push({ name: `daily-${i}`, time: new Date(midnight + 3 * 3_600_000), verified: true });
    if (i % 5 === 0) history.push({ name: `early-${i}`, time: new Date(midnight + 1 * 3_600_000), verified: true });
    if (i % 7 === 3) history.push({ name: `failed-${i}`, time: new Date(midnight + 5 * 3_600_000), verified: false });
  }
  history.push({ name: 'failed-newest', time: new Date('2026-11-22T11:00:00Z'), verified: false });
  const unverified = history.filter((b) => !b.verified).map((b) => b.name);

  for (const policy of [DEFAULT_RETENTION, { daily: 7, weekly: 4, monthly: 12 }, { daily: 3, weekly: 0, monthly: 0 }]) {
    it(`keeps exactly the expected set for 400 days of history (${JSON.stringify(policy)})`, () => {
      const { keep, prune } = selectRetained(history, policy, now);
      const expected = expectedKeep(history, policy, now);
      assert.deepEqual([...keep].sort(), [...expected].sort());
      // Everything verified is either kept or pruned; unverified is neither.
      const verifiedNames = history.filter((b) => b.verified).map((b) => b.name);
      assert.deepEqual([...prune].sort(), verifiedNames.filter((n) => !expected.has(n)).sort());
      for (const n of unverified) assert.ok(!keep.has(n) && !prune.includes(n), `unverified ${n} selected`);
      assert.ok(keep.has('daily-0'), 'the newest verified backup is kept');
      // prune is oldest first.
      const times = prune.map((n) => history.find((b) => b.name === n)!.time.getTime());
      assert.deepEqual(times, [...times].sort((a, b) => a - b));
      assert.ok(keep.size <= policy.daily + policy.weekly + policy.monthly + 1);
    });
  }

  it('uses 14 daily / 8 weekly / 6 monthly by default', () => {
    const byDefault = selectRetained(history, undefined, now);
    assert.deepEqual([...byDefault.keep].sort(), [...expectedKeep(history, { daily: 14, weekly: 8, monthly: 6 }, now)].sort());
    // With the history above: 14 days, weeks and months mostly overlap with days.
    assert.ok(byDefault.keep.size >= 14 && byDefault.keep.size <= 28);
  });

  it('always keeps the newest verified backup, even with every rule at 0 or an old history', () => {
    const none = selectRetained(history, { daily: 0, weekly: 0, monthly: 0 }, now);
    assert.deepEqual([...none.keep], ['daily-0']);
    const later = selectRetained(history, DEFAULT_RETENTION, new Date('2030-01-01T00:00:00Z'));
    assert.deepEqual([...later.keep], ['daily-0']);
    // Only unverified backups: nothing kept, nothing pruned.
    const failedOnly = selectRetained(history.filter((b) => !b.verified), DEFAULT_RETENTION, now);
    assert.equal(failedOnly.keep.size, 0);
    assert.deepEqual(failedOnly.prune, []);
  });

  it('counts local days across the autumn DST change in Europe/Berlin', () => {
    const b = (name: string, iso: string): BackupRecord => ({ name, time: new Date(iso), verified: true });
    const backups = [
      b('A', '2026-10-24T22:30:00Z'), // Berlin 25 Oct 00:30 CEST
      b('B', '2026-10-25T22:30:00Z'), // Berlin 25 Oct 23:30 CET (after the switch)
      b('C', '2026-10-25T23:30:00Z'), // Berlin 26 Oct 00:30 CET
      b('D', '2026-10-26T22:59:00Z'), // Berlin 26 Oct 23:59 CET
      b('E', '2026-10-27T05:00:00Z'), // Berlin 27 Oct 06:00 CET
    ];
    const policy = { daily: 3, weekly: 0, monthly: 0 };
    const now = new Date('2026-10-27T10:00:00Z');
    const berlin = selectRetained(backups, policy, now, 'Europe/Berlin');
    assert.deepEqual([...berlin.keep].sort(), ['B', 'D', 'E']);
    assert.deepEqual(berlin.prune, ['A', 'C']);
    const utc = selectRetained(backups, policy, now);
    assert.deepEqual([...utc.keep].sort(), ['C', 'D', 'E']);
    assert.deepEqual(utc.prune, ['A', 'B']);
  });

  it('counts local days across the spring DST change and local ISO weeks in Europe/Berlin', () => {
    const b = (name: string, iso: string): BackupRecord => ({ name, time: new Date(iso), verified: true });
    const spring = [
      b('S1', '2026-03-28T23:30:00Z'), // Berlin 29 Mar 00:30 CET
      b('S2', '2026-03-29T21:59:00Z'), // Berlin 29 Mar 23:59 CEST
      b('S3', '2026-03-29T22:30:00Z'), // Berlin 30 Mar 00:30 CEST
    ];
    const now = new Date('2026-03-30T12:00:00Z');
    const berlin = selectRetained(spring, { daily: 2, weekly: 0, monthly: 0 }, now, 'Europe/Berlin');
    assert.deepEqual([...berlin.keep].sort(), ['S2', 'S3']);
    assert.deepEqual(berlin.prune, ['S1']);
    const utc = selectRetained(spring, { daily: 2, weekly: 0, monthly: 0 }, now, 'UTC');
    assert.deepEqual([...utc.keep], ['S3']);
    assert.deepEqual(utc.prune, ['S1', 'S2']);

    // Sunday 23:30 UTC is already Monday 00:30 (CET) in Berlin: a new ISO week there.
    const weekly = [b('X', '2026-11-01T23:30:00Z'), b('Y', '2026-11-01T10:00:00Z')];
    const monday = new Date('2026-11-02T12:00:00Z');
    assert.deepEqual([...selectRetained(weekly, { daily: 0, weekly: 2, monthly: 0 }, monday, 'Europe/Berlin').keep].sort(), ['X', 'Y']);
    assert.deepEqual(selectRetained(weekly, { daily: 0, weekly: 2, monthly: 0 }, monday, 'UTC').prune, ['Y']);
  });

  it('rejects bad input clearly', () => {
    assert.throws(() => selectRetained(history, DEFAULT_RETENTION, now, 'Mars/Olympus'), /invalid time zone "Mars\/Olympus"/);
    assert.throws(() => selectRetained(history, { daily: -1 }, now), /retention daily must be a whole number/);
    assert.throws(() => selectRetained([...history, history[0]!], DEFAULT_RETENTION, now), /appears twice/);
  });
});
