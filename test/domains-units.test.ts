// The pure parts of customer domains, by exact comparison: verification tokens, expected records,
// the issuance budget (backoff, 5 failures per hour), the on-demand TLS answer, certificate expiry.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import { startTlsAskServer, type DomainHostIndex } from '../src/apiserver/tls-ask.js';
import { askDecision, recordFailure } from '../src/domains/issuance.js';
import { expiryView } from '../src/domains/expiry.js';
import { expectedRecords, verificationToken } from '../src/domains/records.js';
import { isDomainRoutable } from '../src/edge/sites.js';

const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const at = (ms: number) => new Date(T0 + ms).toISOString();
const verified = [{ type: 'DNSVerified', status: 'True' as const }];

describe('verification records', () => {
  test('the token is stable per (cluster, Domain uid) and differs otherwise', () => {
    assert.equal(verificationToken('cluster-a', 'uid-1'), verificationToken('cluster-a', 'uid-1'));
    assert.notEqual(verificationToken('cluster-a', 'uid-1'), verificationToken('cluster-a', 'uid-2'));
    assert.notEqual(verificationToken('cluster-a', 'uid-1'), verificationToken('cluster-b', 'uid-1'));
    assert.match(verificationToken('c', 'u'), /^slipway-verify-[0-9a-f]{40}$/);
  });

  test('TXT lists the routing record when the edge address is known; CNAME and A need a target', () => {
    assert.deepEqual(expectedRecords({ hostname: 'a.example', verification: {} }, 'tok', { aTarget: '203.0.113.7' }), {
      records: [
        { type: 'TXT', name: '_slipway-challenge.a.example', value: 'tok' },
        { type: 'A', name: 'a.example', value: '203.0.113.7' },
      ],
      required: 1,
    });
    assert.deepEqual(expectedRecords({ hostname: 'a.example', verification: { method: 'A', target: '198.51.100.1' } }, 'tok', { aTarget: '203.0.113.7' }).records, [{ type: 'A', name: 'a.example', value: '198.51.100.1' }]);
    assert.deepEqual(expectedRecords({ hostname: 'a.example', verification: { method: 'CNAME' } }, 'tok', { cnameTarget: 'Edge.Example.' }).records, [{ type: 'CNAME', name: 'a.example', value: 'edge.example' }]);
    assert.equal(expectedRecords({ hostname: 'a.example', verification: { method: 'CNAME' } }, 'tok', {}).required, 0);
  });
});

describe('issuance budget', () => {
  const o = { baseBackoffMs: 60_000, maxBackoffMs: 1_800_000 };
  test('each failure doubles the pause; the fifth in an hour blocks until the first leaves the hour', () => {
    let issuance = recordFailure({ attempts: 1, startedTime: at(0) }, T0, o);
    assert.deepEqual(issuance, { attempts: 1, failureTimes: [at(0)], nextAttemptTime: at(60_000) });
    issuance = recordFailure(issuance, T0 + 120_000, o);
    assert.equal(issuance.nextAttemptTime, at(120_000 + 120_000));
    issuance = recordFailure(issuance, T0 + 300_000, o);
    assert.equal(issuance.nextAttemptTime, at(300_000 + 240_000));
    issuance = recordFailure(issuance, T0 + 600_000, o);
    assert.equal(issuance.nextAttemptTime, at(600_000 + 480_000));
    issuance = recordFailure(issuance, T0 + 1_200_000, o);
    assert.deepEqual(issuance.failureTimes, [at(0), at(120_000), at(300_000), at(600_000), at(1_200_000)]);
    assert.equal(issuance.nextAttemptTime, at(3_600_000), 'no sixth attempt within the hour of the first failure');
  });

  test('failures older than an hour no longer count', () => {
    const issuance = recordFailure({ failureTimes: [at(0), at(1_000)] }, T0 + 3_600_500, o);
    assert.deepEqual(issuance.failureTimes, [at(1_000), at(3_600_500)]);
    assert.equal(issuance.nextAttemptTime, at(3_600_500 + 120_000));
  });

  test('the ask answer: verified and not backing off, never while deleting', () => {
    const domain = (status: object, deletionTimestamp?: string) => ({ metadata: { ...(deletionTimestamp ? { deletionTimestamp } : {}) }, status });
    assert.deepEqual(askDecision(undefined, T0), { allowed: false, reason: 'no Domain has this hostname' });
    assert.equal(askDecision(domain({ conditions: [{ type: 'DNSVerified', status: 'False' }] }), T0).allowed, false);
    assert.deepEqual(askDecision(domain({ conditions: verified }), T0), { allowed: true, reason: 'verified' });
    assert.equal(askDecision(domain({ conditions: verified }, at(0)), T0).allowed, false);
    assert.deepEqual(askDecision(domain({ conditions: verified, issuance: { nextAttemptTime: at(1) } }), T0), { allowed: false, reason: `issuance is backing off until ${at(1)}` });
    assert.equal(askDecision(domain({ conditions: verified, issuance: { nextAttemptTime: at(0) } }), T0).allowed, true);
  });

  test('the ask endpoint allows exactly the Domains the edge routes (when not backing off)', () => {
    const cases = [
      { metadata: {}, status: { conditions: verified } },
      { metadata: { deletionTimestamp: at(0) }, status: { conditions: verified } },
      { metadata: {}, status: { conditions: [{ type: 'DNSVerified', status: 'False' as const }] } },
      { metadata: {}, status: {} },
    ];
    for (const d of cases) assert.equal(askDecision(d, T0).allowed, isDomainRoutable(d as never), JSON.stringify(d));
  });
});

describe('certificate expiry', () => {
  const day = 86_400_000;
  test('under 14 days left warns; the next look is at the recheck interval or when the warning window opens', () => {
    assert.deepEqual(expiryView(at(90 * day), T0, 14, 3_600_000), { expiringSoon: false, daysLeft: 90, recheckInMs: 3_600_000 });
    assert.deepEqual(expiryView(at(14 * day + 60_000), T0, 14, 3_600_000), { expiringSoon: false, daysLeft: 14, recheckInMs: 60_000 });
    assert.deepEqual(expiryView(at(13 * day), T0, 14, 3_600_000), { expiringSoon: true, daysLeft: 13, recheckInMs: 3_600_000 });
    assert.equal(expiryView(at(-day), T0, 14, 3_600_000).daysLeft, -1);
  });
});

describe('the TLS ask listener', () => {
  test('answers without a token, so it refuses to listen beyond loopback', async () => {
    const index = {} as DomainHostIndex;
    await assert.rejects(startTlsAskServer(index, '0.0.0.0:0', pino({ level: 'silent' })), /must be bound to a loopback address/);
    await assert.rejects(startTlsAskServer(index, 'localhost', pino({ level: 'silent' })), /expected host:port/);
  });
});
