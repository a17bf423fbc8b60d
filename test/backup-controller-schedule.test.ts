// Backup controller, scheduling: grandfather-father-son retention over weeks of an injected clock,
// one catch-up run after downtime, no overlap with a run another (killed) manager left Running, and
// the Stale condition with its Warning Event. The target is the test's own etcd (a snapshot is quick).

import assert from 'node:assert/strict';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startBackupPlatform, type BackupPlatform } from './helpers/backup.js';
import { nsPath, waitFor } from './helpers/platform.js';
import { freePort } from './helpers/ports.js';

const NS = 'bk-sched';
const DAY = 86_400_000;
const HOUR = 3_600_000;
let p: BackupPlatform;

before(async () => {
  p = await startBackupPlatform(NS);
});
after(async () => {
  await p?.stop();
});

const etcdTarget = () => ({ type: 'etcd', etcd: { endpoints: p.api.etcd.endpoints } });
const slotName = (policy: string, iso: string) => `${policy}-${Date.parse(iso) / 1000}`;
const exists = (path: string) => access(path).then(() => true, () => false);

test('retention with an injected clock keeps exactly the grandfather-father-son set', async (t) => {
  // Its own Slipway, whose clock starts in the future (so the policy's real creation time lies behind it).
  const p = await startBackupPlatform('bk-gfs', Date.parse('2027-01-24T03:30:00Z'));
  t.after(() => p.stop());
  const etcdTarget = () => ({ type: 'etcd', etcd: { endpoints: p.api.etcd.endpoints } });
  await p.policy('gfs', { target: etcdTarget(), schedule: '0 3 * * *', compression: 'none', retention: { daily: 3, weekly: 3, monthly: 2 } });
  // Daily backups from Sunday 2027-01-24 to Tuesday 2027-02-09, one per clock step.
  const days: string[] = [];
  for (let d = 0; d <= 16; d++) {
    const slot = new Date(Date.parse('2027-01-24T03:00:00Z') + d * DAY).toISOString();
    days.push(slot);
    if (d > 0) p.advance(DAY);
    const b = await p.waitBackup(slotName('gfs', slot).toString(), 30_000).catch(async (err) => {
      throw new Error(`${err.message}; backups: ${(await p.backupsOf('gfs')).map((x) => x.metadata.name).join(', ')}`);
    });
    assert.equal(b.status?.phase, 'Succeeded', b.status?.error);
  }
  // Daily: Feb 9, 8, 7. Weekly (ISO weeks): Feb 9 (week of Feb 8), Feb 7 (week of Feb 1), Jan 31 (week of Jan 25).
  // Monthly: Feb 9, Jan 31. Everything else (Jan 24 … Feb 6 but Jan 31) is pruned.
  const keep = ['2027-01-31', '2027-02-07', '2027-02-08', '2027-02-09'].map((d) => slotName('gfs', `${d}T03:00:00.000Z`));
  const kept = await waitFor('retention to prune', async () => {
    const names = (await p.backupsOf('gfs')).map((b) => b.metadata.name!).sort();
    return names.length === keep.length ? names : undefined;
  }, 20_000).catch(async (err) => {
    throw new Error(`${err.message}; left: ${(await p.backupsOf('gfs')).map((b) => b.metadata.name).join(', ')}`);
  });
  assert.deepEqual(kept, [...keep].sort());
  for (const day of days) {
    const name = slotName('gfs', day);
    assert.equal(await exists(join(p.dir, 'bk-gfs', 'gfs', `${name}.db`)), keep.includes(name), `artifact of ${day} ${keep.includes(name) ? 'kept' : 'pruned'}`);
  }
});

test('a policy without a successful backup for twice its interval becomes Stale with a Warning BackupStale Event', async () => {
  await p.policy('dead', { target: { type: 'etcd', etcd: { endpoints: [`http://127.0.0.1:${await freePort()}`] } }, schedule: '0 * * * *' });
  const created = await waitFor('status', async () => (await p.getPolicy('dead')).status?.conditions?.find((c) => c.type === 'Stale'));
  assert.equal(created.status, 'False');
  p.advance(HOUR);
  const failed = await waitFor('a failed run', async () => (await p.backupsOf('dead')).find((b) => b.status?.phase === 'Failed'));
  assert.match(failed.status?.error ?? '', /etcd snapshot failed/);
  assert.equal((await p.backupsOf('dead')).some((b) => b.status?.phase === 'Succeeded'), false);
  p.advance(2 * HOUR);
  const stale = await waitFor('Stale', async () => {
    const c = (await p.getPolicy('dead')).status?.conditions?.find((x) => x.type === 'Stale');
    return c?.status === 'True' ? c : undefined;
  });
  assert.match(stale.message ?? '', /no successful backup since the policy was created/);
  const events = await waitFor('BackupStale event', async () => {
    const list = (await p.events('BackupStale')).filter((e) => e.involvedObject.name === 'dead');
    return list.length ? list : undefined;
  });
  assert.equal(events[0]!.type, 'Warning');
  assert.equal((await p.getPolicy('dead')).status?.conditions?.find((c) => c.type === 'Healthy')?.status, 'False');
});

test('after downtime the missed slots make exactly one run, for the latest slot', async () => {
  await p.policy('hourly', { target: etcdTarget(), schedule: '0 * * * *' });
  const first = await waitFor('first slot', async () => (await p.getPolicy('hourly')).status?.nextScheduleTime);
  p.advance(Date.parse(first) - p.now() + 1000);
  assert.equal((await p.waitBackup(slotName('hourly', first))).status?.phase, 'Succeeded');
  await new Promise((r) => setTimeout(r, 1500));
  // (Earlier tests moved the clock past the policy's creation, so it may have made one catch-up run too.)
  // Same-day runs are pruned by the daily retention, so runs are counted by their success Events.
  const runs = async () => new Set((await p.events('BackupSucceeded')).filter((e) => e.involvedObject.kind === 'BackupPolicy' && e.involvedObject.name === 'hourly').map((e) => /Backup (\S+) of/.exec(e.message ?? '')?.[1]));
  const before = [...(await runs())] as string[];
  await p.restartManager(() => p.advance(5 * HOUR));
  const latest = new Date(Math.floor(p.now() / HOUR) * HOUR).toISOString();
  assert.equal((await p.waitBackup(slotName('hourly', latest))).status?.phase, 'Succeeded');
  await new Promise((r) => setTimeout(r, 2500)); // several reconciles later …
  assert.deepEqual([...(await runs())].sort(), [...before, slotName('hourly', latest)].sort(), '… still one run for the five missed slots');
  const policy = await p.getPolicy('hourly');
  assert.equal(Date.parse(policy.status!.lastScheduleTime!), Date.parse(latest));
});

test('a Backup another manager left Running blocks the next run while its heartbeat lives, and is failed as interrupted when it stops', async () => {
  let stuckVersion = '';
  // The policy and a run of a manager that is alive (the test renews its heartbeat), created while no manager is running.
  await p.restartManager(async () => {
    await p.policy('busy', { target: etcdTarget(), schedule: '0 * * * *' });
    await p.api.client.create(nsPath(NS, 'backups'), { apiVersion: 'slipway.dev/v1alpha1', kind: 'Backup', metadata: { name: 'stuck' }, spec: { policy: 'busy' } });
    const written = await p.api.client.patch(nsPath(NS, 'backups', 'stuck') + '/status', { status: { phase: 'Running', holder: 'other-manager-1', startTime: new Date(p.now()).toISOString(), heartbeatTime: new Date().toISOString() } });
    stuckVersion = written.metadata.resourceVersion!;
  });
  assert.ok(stuckVersion);
  const beat = setInterval(() => void p.api.client.patch(nsPath(NS, 'backups', 'stuck') + '/status', { status: { heartbeatTime: new Date().toISOString() } }).catch(() => undefined), 200);
  try {
    const next = await waitFor('next slot', async () => (await p.getPolicy('busy')).status?.nextScheduleTime);
    p.advance(Date.parse(next) - p.now() + 1000);
    await new Promise((r) => setTimeout(r, 3000));
    assert.deepEqual((await p.backupsOf('busy')).map((b) => b.metadata.name), ['stuck'], 'no second run while one is Running');
    assert.equal((await p.backup('stuck')).status?.phase, 'Running');
    assert.equal((await p.getPolicy('busy')).status?.activeBackup, 'stuck');
  } finally {
    clearInterval(beat);
  }
  const stuck = await p.waitBackup('stuck', 15_000);
  assert.equal(stuck.status?.phase, 'Failed');
  assert.match(stuck.status?.error ?? '', /interrupted: .*other-manager-1/);
  const due = (await p.getPolicy('busy')).status?.nextScheduleTime;
  const slot = new Date(Math.floor(p.now() / HOUR) * HOUR).toISOString();
  const ran = await p.waitBackup(slotName('busy', slot), 15_000);
  assert.equal(ran.status?.phase, 'Succeeded', `the due slot runs once the policy is free (next ${due})`);
});
