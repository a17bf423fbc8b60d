// Domain DNS verification against a real dnsmasq: the resolver wrapper (TXT, CNAME, A, negative
// cache), and the domain controller in a real controller manager on a real API server: a Domain
// waits in PendingDNS with its expected records and a growing check interval, verifies once the
// record appears, and a second Domain cannot take a claimed hostname; `slipctl domain verify`
// checks at once. Also the TLS ask endpoint.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Domain } from '../src/api/generated/crd-types.js';
import type { ControllerManager } from '../src/controllers/manager.js';
import { DnsChecker } from '../src/domains/dns-check.js';
import { challengeName, expectedRecords, verificationToken } from '../src/domains/records.js';
import { DOMAIN_FINALIZER } from '../src/controllers/domain-controller.js';
import { createNamespace, startApi, type TestApi } from './helpers/apiserver.js';
import { createCli } from './helpers/cli.js';
import { startDnsmasq, type TestDns } from './helpers/dnsmasq.js';
import { freePort } from './helpers/ports.js';
import { nsPath, startManager, waitFor, waitForEvent } from './helpers/platform.js';

const NS = 'domains-dns';
let dns: TestDns;
let api: TestApi;
let manager: ControllerManager;

const domain = (name: string, hostname: string, verification?: Record<string, unknown>) => ({
  apiVersion: 'slipway.dev/v1alpha1',
  kind: 'Domain',
  metadata: { name },
  spec: { hostname, service: 'web', ...(verification ? { verification } : {}) },
});
const getDomain = (name: string) => api.client.get<Domain>(nsPath(NS, 'domains', name));
const ask = async (host: string) => {
  const res = await fetch(`${api.server.tlsAskUrl}?domain=${encodeURIComponent(host)}`);
  return { status: res.status, text: (await res.text()).trim() };
};

before(async () => {
  dns = await startDnsmasq({ a: { 'edge.slipway.test': '127.0.0.9' } });
  api = await startApi({ tlsAskAddress: '127.0.0.1:0' });
  await createNamespace(api.client, NS);
  // Nothing listens on the probe address: the edge "serves" no host, so deletions finish at once.
  manager = await startManager(api, {
    domains: { resolvers: [dns.server], edgeProbeAddress: `127.0.0.1:${await freePort()}`, cnameTarget: 'edge.slipway.test', dnsCheckBaseMs: 300, dnsCheckMaxMs: 5_000, negativeCacheMs: 100, issuanceTimeoutMs: 1_000 },
  });
});

after(async () => {
  await manager?.stop();
  await api?.stop();
  await dns?.stop();
});

describe('DNS lookups through a configured resolver', () => {
  test('TXT, CNAME and A records are found; wrong or missing values are not', async () => {
    await dns.setRecords({ txt: { '_slipway-challenge.a.slipway.test': ['tok-1'] }, a: { 'b.slipway.test': '127.0.0.7', 'edge.slipway.test': '127.0.0.9' }, cname: { 'c.slipway.test': 'edge.slipway.test' } });
    const checker = new DnsChecker({ servers: [dns.server], negativeCacheMs: 0 });
    const txt = expectedRecords({ hostname: 'a.slipway.test', verification: { method: 'TXT' } }, 'tok-1', {});
    assert.deepEqual(txt.records, [{ type: 'TXT', name: '_slipway-challenge.a.slipway.test', value: 'tok-1' }]);
    assert.equal((await checker.check(txt.records, txt.required)).verified, true);
    const wrong = await checker.check([{ type: 'TXT', name: '_slipway-challenge.a.slipway.test', value: 'tok-2' }], 1);
    assert.equal(wrong.verified, false);
    assert.match(wrong.problem!, /is "tok-1", expected "tok-2"/);
    assert.equal((await checker.check([{ type: 'A', name: 'b.slipway.test', value: '127.0.0.7' }], 1)).verified, true);
    assert.equal((await checker.check([{ type: 'A', name: 'b.slipway.test', value: '127.0.0.8' }], 1)).verified, false);
    const cname = expectedRecords({ hostname: 'c.slipway.test', verification: { method: 'CNAME' } }, 'unused', { cnameTarget: 'EDGE.slipway.test.' });
    assert.deepEqual(cname.records, [{ type: 'CNAME', name: 'c.slipway.test', value: 'edge.slipway.test' }]);
    assert.equal((await checker.check(cname.records, cname.required)).verified, true);
    const missing = await checker.check([{ type: 'TXT', name: '_slipway-challenge.nope.slipway.test', value: 'x' }], 1);
    assert.equal(missing.verified, false);
    assert.match(missing.problem!, /no TXT record _slipway-challenge\.nope\.slipway\.test/);
    assert.match(expectedRecords({ hostname: 'd.slipway.test', verification: { method: 'A' } }, 't', {}).error!, /needs a target/);
  });

  test('a missing record is remembered for the negative-cache time only', async () => {
    let now = 1_000_000;
    const checker = new DnsChecker({ servers: [dns.server], negativeCacheMs: 5_000, clock: () => now });
    const name = '_slipway-challenge.neg.slipway.test';
    assert.deepEqual((await checker.lookup('TXT', name)).values, []);
    await dns.addRecords({ txt: { [name]: ['v'] } });
    assert.deepEqual((await checker.lookup('TXT', name)).values, [], 'answered from the negative cache');
    now += 5_001;
    assert.deepEqual((await checker.lookup('TXT', name)).values, ['v']);
  });

  test('a resolver that does not answer is an error, not a missing record', async () => {
    const checker = new DnsChecker({ servers: [`127.0.0.1:${await freePort()}`], timeoutMs: 200 });
    const result = await checker.lookup('TXT', '_slipway-challenge.x.slipway.test');
    assert.ok(result.error, 'an error is reported');
  });
});

describe('the domain controller', () => {
  test('a Domain waits in PendingDNS with its expected records, checking less and less often, until the TXT record appears', async () => {
    await api.client.create(nsPath(NS, 'domains'), domain('shop', 'shop.slipway.test'));
    const created = await getDomain('shop');
    const token = verificationToken((await api.client.get(`/apis/slipway.dev/v1alpha1/namespaces/slipway-system`)).metadata.uid!, created.metadata.uid!);
    const pending = await waitFor('three DNS checks', async () => {
      const d = await getDomain('shop');
      return (d.status?.attempts ?? 0) >= 3 ? d : undefined;
    }, 20_000);
    assert.equal(pending.status?.phase, 'PendingDNS');
    assert.deepEqual(pending.metadata.finalizers, [DOMAIN_FINALIZER]);
    assert.equal(pending.status?.verificationToken, token);
    assert.deepEqual(pending.status?.expectedRecords, [
      { type: 'TXT', name: challengeName('shop.slipway.test'), value: token, observed: false },
      { type: 'CNAME', name: 'shop.slipway.test', value: 'edge.slipway.test', observed: false },
    ]);
    assert.match(pending.status?.lastError ?? '', /no TXT record _slipway-challenge\.shop\.slipway\.test/);
    const dnsCondition = pending.status?.conditions?.find((c) => c.type === 'DNSVerified');
    assert.equal(dnsCondition?.status, 'False');
    // The check interval doubles: record nextCheckTime - lastCheckTime over a few checks.
    const gaps: number[] = [];
    let seen = pending.status?.attempts ?? 0;
    while (gaps.length < 2) {
      const d = await waitFor('another DNS check', async () => {
        const x = await getDomain('shop');
        return (x.status?.attempts ?? 0) > seen ? x : undefined;
      }, 20_000, 50);
      seen = d.status!.attempts!;
      gaps.push(Date.parse(d.status!.nextCheckTime!) - Date.parse(d.status!.lastCheckTime!));
    }
    assert.ok(gaps[1]! > gaps[0]!, `check intervals grow: ${gaps.join(', ')} ms`);
    assert.equal((await ask('shop.slipway.test')).status, 403, 'not verified: the ask endpoint refuses');
    const cli = createCli(api.url, { token: api.adminToken });
    try {
      const described = await cli.run(['describe', 'domain', 'shop', '-n', NS]);
      assert.equal(described.code, 0, described.stderr);
      assert.match(described.stdout, /^Phase: +PendingDNS$/m);
      assert.match(described.stdout, new RegExp(`^ +TXT +_slipway-challenge\\.shop\\.slipway\\.test +${token} +no$`, 'm'));
      assert.match(described.stdout, /^Last error: +no TXT record/m);
      assert.match(described.stdout, /^Next check: +\S+ \((in .+|.+ ago)\)$/m);
      assert.match(described.stdout, /^Certificate: +<none>$/m);
    } finally {
      cli.cleanup();
    }

    await dns.addRecords({ txt: { [challengeName('shop.slipway.test')]: [token] } });
    const verified = await waitFor('DNSVerified', async () => {
      const d = await getDomain('shop');
      return d.status?.conditions?.some((c) => c.type === 'DNSVerified' && c.status === 'True') ? d : undefined;
    }, 20_000, 50);
    assert.ok(verified.status?.verifiedTime);
    assert.equal(verified.status?.expectedRecords?.[0]?.observed, true);
    // No Service "web": routed once it exists, reported meanwhile.
    const waiting = await waitFor('waiting for the Service', async () => {
      const d = await getDomain('shop');
      return d.status?.phase === 'DNSVerified' && /Service web not found/.test(d.status.lastError ?? '') ? d : undefined;
    }, 10_000, 50);
    assert.equal(waiting.status?.nextCheckTime, undefined);
    await waitForEvent(api.client, NS, 'a Normal DNSVerified', (e) => e.reason === 'DNSVerified' && e.type === 'Normal', 10_000, `involvedObject.uid=${created.metadata.uid}`);

    // The TLS ask endpoint: verified → 200, unknown → 404, fast.
    const yes = await ask('shop.slipway.test');
    assert.equal(yes.status, 200, yes.text);
    assert.equal((await ask('SHOP.slipway.test.')).status, 200, 'case and trailing dot do not matter');
    const unknown = await ask('unknown.slipway.test');
    assert.equal(unknown.status, 404);
    assert.match(unknown.text, /no Domain has this hostname/);
    assert.equal((await fetch(api.server.tlsAskUrl!)).status, 400);
  });

  test('CNAME and A verification use the configured or given targets', async () => {
    await dns.addRecords({ a: { 'viaa.slipway.test': '127.0.0.5' }, cname: { 'viacname.slipway.test': 'edge.slipway.test' } });
    await api.client.create(nsPath(NS, 'domains'), domain('viacname', 'viacname.slipway.test', { method: 'CNAME' }));
    await api.client.create(nsPath(NS, 'domains'), domain('viaa', 'viaa.slipway.test', { method: 'A', target: '127.0.0.5' }));
    await api.client.create(nsPath(NS, 'domains'), domain('notarget', 'notarget.slipway.test', { method: 'A' }));
    for (const name of ['viacname', 'viaa']) {
      await waitFor(`${name} DNSVerified`, async () => (await getDomain(name)).status?.conditions?.some((c) => c.type === 'DNSVerified' && c.status === 'True'), 20_000, 50);
    }
    const failed = await waitFor('notarget Failed', async () => {
      const d = await getDomain('notarget');
      return d.status?.phase === 'Failed' ? d : undefined;
    }, 10_000, 50);
    assert.match(failed.status?.lastError ?? '', /verification method A needs a target/);
  });

  test('a hostname already claimed by an older Domain is refused until that Domain is deleted', async () => {
    await api.client.create(nsPath(NS, 'domains'), domain('shop-copy', 'shop.slipway.test'));
    const refused = await waitFor('shop-copy Failed', async () => {
      const d = await getDomain('shop-copy');
      return d.status?.phase === 'Failed' ? d : undefined;
    }, 10_000, 50);
    assert.match(refused.status?.lastError ?? '', /already claimed by Domain domains-dns\/shop/);
    // Deleting the first one: the edge (nothing on the probe address) serves no route, so the finalizer goes at once.
    await api.client.delete(nsPath(NS, 'domains', 'shop'));
    await waitFor('shop gone', async () => (await api.client.get(nsPath(NS, 'domains', 'shop')).then(() => false, (e) => e.code === 404)), 10_000, 50);
    assert.equal((await ask('shop.slipway.test')).status, 403, 'the remaining claimant is not verified');
    const taken = await waitFor('shop-copy now pending', async () => {
      const d = await getDomain('shop-copy');
      return d.status?.phase === 'PendingDNS' ? d : undefined;
    }, 10_000, 50);
    assert.notEqual(taken.status?.verificationToken, undefined);
  });

  test('slipctl domain verify checks at once, past the backoff; on a verified Domain a missing record warns and the route stays', async () => {
    await api.client.create(nsPath(NS, 'domains'), domain('later', 'later.slipway.test'));
    // Wait until the next scheduled check is seconds away (intervals double up to 5 s here).
    const waiting = await waitFor('a check due more than 3 s from now', async () => {
      const d = await getDomain('later');
      return Date.parse(d.status?.nextCheckTime ?? '') - Date.now() > 3_000 ? d : undefined;
    }, 30_000, 50);
    const due = Date.parse(waiting.status!.nextCheckTime!);
    const token = waiting.status!.verificationToken!;
    await dns.addRecords({ txt: { [challengeName('later.slipway.test')]: [token] } });
    const cli = createCli(api.url, { token: api.adminToken });
    try {
      const verify = await cli.run(['domain', 'verify', 'later', '-n', NS]);
      assert.equal(verify.code, 0, verify.stderr);
      assert.match(verify.stdout, new RegExp(`^ +TXT +_slipway-challenge\\.later\\.slipway\\.test +${token} +yes$`, 'm'));
      const verified = await getDomain('later');
      assert.equal(verified.status?.conditions?.find((c) => c.type === 'DNSVerified')?.status, 'True');
      assert.ok(Date.parse(verified.status!.verifiedTime!) < due, `verified at ${verified.status!.verifiedTime}, before the scheduled check at ${waiting.status!.nextCheckTime}`);

      // The customer changes the record later: a check on request finds it, warns, and keeps the route.
      await dns.addRecords({ txt: { [challengeName('later.slipway.test')]: ['something-else'] } });
      const again = await cli.run(['domain', 'verify', 'domain/later', '-n', NS]);
      assert.equal(again.code, 1, 'exit 1: the record proving ownership is missing');
      assert.match(again.stdout, /^ +TXT +_slipway-challenge\.later\.slipway\.test +\S+ +no$/m);
      const warned = await waitForEvent(api.client, NS, 'a DNSRecordsMissing', (e) => e.reason === 'DNSRecordsMissing' && e.involvedObject?.name === 'later');
      assert.equal(warned.type, 'Warning');
      assert.match(warned.message ?? '', /is "something-else", expected .*; later\.slipway\.test stays routed/);
      const kept = await getDomain('later');
      assert.equal(kept.status?.conditions?.find((c) => c.type === 'DNSVerified')?.status, 'True', 'still routed');
      assert.equal((await ask('later.slipway.test')).status, 200);

      const missing = await cli.run(['domain', 'verify', 'nosuch', '-n', NS]);
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /domain "nosuch" not found in namespace "domains-dns"/);
    } finally {
      cli.cleanup();
    }
  });
});
