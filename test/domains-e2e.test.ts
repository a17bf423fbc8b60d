// Customer domains end to end with real parts: Caddy (driven by the edge controller, on-demand TLS
// asking the API server's ask endpoint), Pebble as the ACME CA, dnsmasq as the customer's DNS, and
// a busybox app on the real Docker. A Domain goes PendingDNS → Ready once its TXT record appears and
// serves the app over HTTPS with a Pebble certificate; an unknown hostname gets no handshake; an
// issuance that cannot succeed backs off and stops at 5 failures per hour (also across a controller
// manager restart); deleting a Domain removes its route before the object goes.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import Docker from 'dockerode';
import type { Domain, Service } from '../src/api/generated/crd-types.js';
import type { ControllerManager, ManagerOptions } from '../src/controllers/manager.js';
import { DOMAIN_FINALIZER } from '../src/controllers/domain-controller.js';
import { challengeName } from '../src/domains/records.js';
import { probeCertificate, probeRoute } from '../src/domains/tls-probe.js';
import { createNamespace, startApi, type TestApi } from './helpers/apiserver.js';
import { startCaddy, type TestCaddy } from './helpers/caddy.js';
import { startDnsmasq, type TestDns } from './helpers/dnsmasq.js';
import { buildTestImage, DOCKER_SOCKET, ensureDockerd, TEST_IMAGE } from './helpers/docker.js';
import { httpsGet, startPebble, type TestPebble } from './helpers/pebble.js';
import { nsPath, registerNode, startManager, waitFor, waitForEvent } from './helpers/platform.js';

const NS = 'domains-e2e';
const docker = new Docker({ socketPath: DOCKER_SOCKET });
let dns: TestDns;
let caddy: TestCaddy;
let pebble: TestPebble;
let api: TestApi;
let manager: ControllerManager;

const ISSUANCE_TIMEOUT_MS = 3_000;
const getDomain = (name: string) => api.client.get<Domain>(nsPath(NS, 'domains', name));
const createDomain = (name: string, hostname: string) =>
  api.client.create(nsPath(NS, 'domains'), { apiVersion: 'slipway.dev/v1alpha1', kind: 'Domain', metadata: { name }, spec: { hostname, service: 'web' } });
const edgeAddress = () => `127.0.0.1:${caddy.httpsPort}`;
const ask = async (host: string) => (await fetch(`${api.server.tlsAskUrl}?domain=${host}`)).status;

/** HTTPS GET / through Caddy with SNI and Host = hostname, trusting only Pebble's root (curl --resolve --cacert). */
const httpsViaEdge = (hostname: string) => httpsGet(`https://127.0.0.1:${caddy.httpsPort}/`, pebble.rootPem, hostname);

/** The edge on the test's Caddy and Pebble, on-demand TLS asking the API server; short domain timings. */
const managerOptions = (): Partial<ManagerOptions> => ({
  edge: { adminAddress: caddy.adminAddress, httpPort: caddy.httpPort, httpsPort: caddy.httpsPort, resyncMs: 1_000, debounceMs: 50, askUrl: api.server.tlsAskUrl!, acme: { directoryUrl: pebble.directoryUrl, trustedRootsPemFiles: [pebble.listenerCaFile] } },
  domains: { resolvers: [dns.server], edgeProbeAddress: edgeAddress(), trustedRootsPem: pebble.rootPem, dnsCheckBaseMs: 200, dnsCheckMaxMs: 1_000, negativeCacheMs: 100, probeIntervalMs: 200, issuanceTimeoutMs: ISSUANCE_TIMEOUT_MS, issuanceBackoffBaseMs: 1_000, issuanceBackoffMaxMs: 4_000 },
});

async function waitPhase(name: string, phase: string, timeoutMs = 30_000): Promise<Domain> {
  return waitFor(`Domain ${name} in phase ${phase}`, async () => {
    const d = await getDomain(name);
    return d.status?.phase === phase ? d : undefined;
  }, timeoutMs, 50);
}

before(async () => {
  await ensureDockerd();
  await buildTestImage(docker);
  dns = await startDnsmasq();
  caddy = await startCaddy();
  pebble = await startPebble({ dnsServer: dns.server, httpPort: caddy.httpPort, tlsPort: caddy.httpsPort });
  api = await startApi({ tlsAskAddress: '127.0.0.1:0' });
  manager = await startManager(api, managerOptions());
  await registerNode(api.client, 'local', { socket: DOCKER_SOCKET }, { 'slipway.dev/edge': 'true' });
  await createNamespace(api.client, NS);
  await api.client.create(nsPath(NS, 'services'), {
    apiVersion: 'slipway.dev/v1alpha1',
    kind: 'Service',
    metadata: { name: 'web' },
    spec: { image: TEST_IMAGE, replicas: 1, healthCheck: { path: '/cgi-bin/health', intervalSeconds: 1, timeoutSeconds: 1, failureThreshold: 2 }, env: [{ name: 'APP_VERSION', value: 'customer' }] },
  });
  await waitFor('web active', async () => (await api.client.get<Service>(nsPath(NS, 'services', 'web'))).status?.activeRelease, 60_000, 100);
});

after(async () => {
  for (const d of (await api.client.list(nsPath(NS, 'domains')).catch(() => ({ items: [] }))).items) await api.client.delete(nsPath(NS, 'domains', d.metadata.name!)).catch(() => {});
  await api.client.delete(nsPath(NS, 'services', 'web')).catch(() => {});
  await waitFor('test containers removed', async () => (await docker.listContainers({ all: true, filters: { label: [`slipway.dev/namespace=${NS}`] } })).length === 0, 30_000).catch(() => {});
  await manager?.stop();
  await api?.stop();
  await pebble?.stop();
  await caddy?.stop();
  await dns?.stop();
});

describe('customer domains with Caddy, Pebble and dnsmasq', () => {
  test('a Domain goes PendingDNS → Ready once its TXT record exists, and serves the app over HTTPS with a Pebble certificate', async () => {
    await createDomain('shop', 'shop.customer.test');
    const pending = await waitPhase('shop', 'PendingDNS');
    const txt = pending.status!.expectedRecords![0]!;
    assert.equal(txt.type, 'TXT');
    assert.equal(txt.name, challengeName('shop.customer.test'));
    assert.equal(txt.value, pending.status!.verificationToken);
    assert.equal((await probeCertificate({ address: edgeAddress(), hostname: 'shop.customer.test', trustedRootsPem: pebble.rootPem, timeoutMs: 3_000 })).kind, 'refused', 'no certificate before verification');

    await dns.addRecords({ txt: { [txt.name]: [txt.value] }, a: { 'shop.customer.test': '127.0.0.1' } });
    const ready = await waitPhase('shop', 'Ready');
    assert.match(ready.status?.certificate?.issuer ?? '', /Pebble/);
    assert.deepEqual(ready.status?.certificate?.dnsNames, ['shop.customer.test']);
    assert.ok(Date.parse(ready.status!.certificate!.notAfter!) > Date.now());
    for (const type of ['DNSVerified', 'CertificateReady', 'Ready']) assert.equal(ready.status?.conditions?.find((c) => c.type === type)?.status, 'True', type);
    assert.equal(ready.status?.conditions?.find((c) => c.type === 'CertificateExpiringSoon')?.status, 'False');
    const res = await httpsViaEdge('shop.customer.test');
    assert.equal(res.status, 200);
    assert.match(res.body, /customer/);
    for (const reason of ['DNSVerified', 'CertificateIssued']) {
      await waitForEvent(api.client, NS, reason, (e) => e.reason === reason, 10_000, `involvedObject.uid=${ready.metadata.uid}`);
    }
    assert.equal(await ask('shop.customer.test'), 200);
  });

  test('on-demand TLS: a hostname without a verified Domain gets no certificate', async () => {
    assert.equal(await ask('stranger.customer.test'), 404);
    const outcome = await probeCertificate({ address: edgeAddress(), hostname: 'stranger.customer.test', trustedRootsPem: pebble.rootPem, timeoutMs: 3_000 });
    assert.equal(outcome.kind, 'refused', JSON.stringify(outcome));
    assert.doesNotMatch(pebble.output(), /stranger\.customer\.test/, 'the CA was never asked');
  });

  test('an issuance that cannot succeed backs off exponentially and stops after 5 failures in the hour', async () => {
    // DNS ownership is proven by TXT, but the hostname has no address: Pebble cannot validate.
    await createDomain('broken', 'broken.customer.test');
    const pending = await waitPhase('broken', 'PendingDNS');
    const txt = pending.status!.expectedRecords![0]!;
    await dns.addRecords({ txt: { [txt.name]: [txt.value] } });
    const issuing = await waitPhase('broken', 'Issuing');
    assert.equal(issuing.status?.issuance?.attempts, 1);
    const exhausted = await waitFor('5 failed issuances', async () => {
      const d = await getDomain('broken');
      return (d.status?.issuance?.failureTimes?.length ?? 0) >= 5 ? d : undefined;
    }, 6 * (ISSUANCE_TIMEOUT_MS + 3_000), 100);
    const failures = exhausted.status!.issuance!.failureTimes!.map(Date.parse);
    const gaps = failures.slice(1).map((t, i) => t - failures[i]!);
    // Pauses of 1, 2, 4 s after the first three failures, each followed by a 3 s attempt.
    assert.ok(gaps[1]! > gaps[0]! && gaps[2]! > gaps[1]!, `the pause between attempts grows: ${gaps.join(', ')} ms`);
    assert.equal(exhausted.status?.phase, 'Failed');
    assert.equal(exhausted.status?.issuanceFailures, 5);
    assert.equal(exhausted.status?.conditions?.find((c) => c.type === 'CertificateReady')?.reason, 'IssuanceFailed');
    assert.match(exhausted.status?.lastError ?? '', /failure 5 of at most 5 per hour/);
    const next = Date.parse(exhausted.status!.issuance!.nextAttemptTime!);
    assert.ok(next >= failures[0]! + 3_600_000, 'no sixth attempt within the hour of the first failure');
    assert.equal(exhausted.status?.nextCheckTime, exhausted.status?.issuance?.nextAttemptTime);
    assert.equal(await ask('broken.customer.test'), 403);
    const attempts = exhausted.status!.issuance!.attempts!;
    await new Promise((r) => setTimeout(r, ISSUANCE_TIMEOUT_MS));
    assert.equal((await getDomain('broken')).status?.issuance?.attempts, attempts, 'no attempt starts while the budget is spent');
    // The budget lives in the status: a new controller manager does not start over.
    await manager.stop();
    manager = await startManager(api, managerOptions());
    await waitFor('the new manager leads', () => manager.isLeader(), 20_000, 50);
    await new Promise((r) => setTimeout(r, ISSUANCE_TIMEOUT_MS));
    const resumed = await getDomain('broken');
    assert.equal(resumed.status?.issuance?.attempts, attempts, 'no attempt after a manager restart either');
    assert.equal(resumed.status?.phase, 'Failed');
    await waitForEvent(api.client, NS, 'a Warning CertificateFailed', (e) => e.reason === 'CertificateFailed' && e.type === 'Warning', 10_000, `involvedObject.uid=${exhausted.metadata.uid}`);
    const orders = (pebble.output().match(/Pulled a task from the Tasks queue: .*broken\.customer\.test/g) ?? []).length;
    console.log(`# Pebble validation tasks for broken.customer.test: ${orders}; issuance attempts in status: ${attempts}`);
  });

  test('deleting a Domain removes its route before the object goes', async () => {
    const before = await getDomain('shop');
    assert.deepEqual(before.metadata.finalizers, [DOMAIN_FINALIZER]);
    await api.client.delete(nsPath(NS, 'domains', 'shop'));
    await waitFor('Domain shop gone', async () => api.client.get(nsPath(NS, 'domains', 'shop')).then(() => false, (e) => e.code === 404), 30_000, 50);
    const route = await probeRoute({ address: edgeAddress(), hostname: 'shop.customer.test', timeoutMs: 3_000 });
    assert.ok('status' in route ? route.status === 404 : route.gone, `the edge no longer serves shop.customer.test: ${JSON.stringify(route)}`);
    assert.equal(await ask('shop.customer.test'), 404);
  });
});
