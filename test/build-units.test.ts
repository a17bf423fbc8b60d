// Pure parts of deploy-from-git, compared exactly: webhook signatures and push payloads, build
// identity and tags, context paths, URL redaction, build node choice, the source key and which
// built images are collected.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { pushOf, signatureMatches, signatureOf } from '../src/apiserver/git-hooks.js';
import { buildKey, buildTag, normalizeContext } from '../src/build/build-identity.js';
import { tailLines } from '../src/build/build-log.js';
import { isFullSha, redactUrl } from '../src/build/git.js';
import { chooseBuildNode, sourceKey } from '../src/controllers/service/build-source.js';
import type Docker from 'dockerode';
import type { Node, Release } from '../src/api/generated/crd-types.js';
import { releaseReferences, unusedBuiltImages } from '../src/build/image-gc.js';

const SHA = 'a'.repeat(40);

test('webhook signatures: GitHub and Gitea headers, constant-time compare, anything else refused', () => {
  const body = Buffer.from('{"ref":"refs/heads/main"}');
  const hex = createHmac('sha256', 's3cret').update(body).digest('hex');
  assert.ok(signatureMatches(Buffer.from('s3cret'), body, signatureOf({ 'x-hub-signature-256': `sha256=${hex}` })));
  assert.ok(signatureMatches(Buffer.from('s3cret'), body, signatureOf({ 'x-gitea-signature': hex })));
  assert.ok(!signatureMatches(Buffer.from('other'), body, signatureOf({ 'x-hub-signature-256': `sha256=${hex}` })));
  assert.ok(!signatureMatches(Buffer.from('s3cret'), Buffer.from(`${body} `), signatureOf({ 'x-hub-signature-256': `sha256=${hex}` })));
  assert.equal(signatureOf({}), undefined);
  assert.equal(signatureOf({ 'x-hub-signature-256': hex }), undefined, 'GitHub signatures carry the sha256= prefix');
  assert.equal(signatureOf({ 'x-hub-signature-256': 'sha256=abc' }), undefined);
  assert.ok(!signatureMatches(Buffer.from('s3cret'), body, undefined));
});

test('push payloads: JSON or form-encoded; a payload without a full commit is a 400', () => {
  assert.deepEqual(pushOf(Buffer.from(JSON.stringify({ ref: 'refs/heads/main', after: SHA, commits: [] })), 'application/json'), { ref: 'refs/heads/main', after: SHA });
  const form = `payload=${encodeURIComponent(JSON.stringify({ ref: 'refs/heads/x', after: SHA }))}`;
  assert.deepEqual(pushOf(Buffer.from(form), 'application/x-www-form-urlencoded'), { ref: 'refs/heads/x', after: SHA });
  assert.throws(() => pushOf(Buffer.from('{"ref":"refs/heads/main","after":"abc"}'), 'application/json'), /full commit SHA/);
  assert.throws(() => pushOf(Buffer.from('not json'), 'application/json'), /not JSON/);
});

test('build identity: commit and build configuration, defaults equal to explicit values', () => {
  const base = { git: '/srv/app.git', commit: SHA };
  assert.equal(buildKey(base), buildKey({ ...base, context: '.', dockerfile: 'Dockerfile', buildArgs: {} }));
  assert.equal(buildKey(base), buildKey({ ...base, context: './' }));
  assert.notEqual(buildKey(base), buildKey({ ...base, commit: 'b'.repeat(40) }));
  assert.notEqual(buildKey(base), buildKey({ ...base, buildArgs: { A: '1' } }));
  assert.notEqual(buildKey(base), buildKey({ ...base, target: 'prod' }));
  assert.match(buildKey(base), /^[0-9a-f]{32}$/);
  assert.equal(buildTag('shop', 'web', SHA, 'f'.repeat(32)), `slipway-build/shop.web:${'a'.repeat(12)}-${'f'.repeat(12)}`);
});

test('context paths stay inside the repository', () => {
  assert.equal(normalizeContext(undefined), '.');
  assert.equal(normalizeContext('./app/'), 'app');
  assert.equal(normalizeContext('services//api'), 'services/api');
  assert.throws(() => normalizeContext('../other'), /relative path inside the repository/);
  assert.throws(() => normalizeContext('/etc'), /relative path inside the repository/);
});

test('URLs lose their credentials in messages; full SHAs are recognised', () => {
  assert.equal(redactUrl('https://user:token@git.example.com/a.git'), 'https://git.example.com/a.git');
  assert.equal(redactUrl('ssh://git@host:22/a.git'), 'ssh://host:22/a.git');
  assert.equal(redactUrl('/srv/repo'), '/srv/repo');
  assert.ok(isFullSha(SHA));
  assert.ok(!isFullSha('main'));
  assert.ok(!isFullSha('abc1234'));
  assert.equal(tailLines('a\nb\nc\n\n', 2), 'b\nc');
});

test('build node: nodeSelector, else a Ready builder-labelled node, else the first Ready node by name', () => {
  const node = (name: string, ready: boolean, labels: Record<string, string> = {}) =>
    ({ metadata: { name, labels }, spec: { docker: {} }, status: { conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] } }) as unknown as Node;
  const none = new Set<string>();
  const nodes = [node('c', true), node('b', true, { 'slipway.dev/builder': 'true', big: 'yes' }), node('a', true), node('d', false, { 'slipway.dev/builder': 'true' })];
  assert.equal(chooseBuildNode(nodes, undefined, none), 'b');
  assert.equal(chooseBuildNode(nodes, undefined, new Set(['b'])), 'a', 'an unreachable builder is passed over');
  assert.equal(chooseBuildNode([node('c', true), node('a', true)], undefined, none), 'a');
  assert.equal(chooseBuildNode(nodes, { big: 'yes' }, none), 'b');
  assert.equal(chooseBuildNode(nodes, { big: 'no' }, none), undefined);
  assert.equal(chooseBuildNode([node('d', false)], undefined, none), undefined);
});

test('the source key changes with the URL, the ref and a restart', () => {
  const build = { git: '/r', ref: 'main' };
  assert.equal(sourceKey(build, undefined), sourceKey(build, undefined));
  assert.notEqual(sourceKey(build, undefined), sourceKey(build, '2026-01-01T00:00:00Z'));
  assert.notEqual(sourceKey(build, undefined), sourceKey({ ...build, ref: 'dev' }, undefined));
});

test('image collection: only unreferenced, old enough images this installation built', () => {
  const now = Date.parse('2026-11-22T12:00:00Z');
  const image = (id: string, labels: Record<string, string>, extra: Partial<Docker.ImageInfo> = {}): Docker.ImageInfo =>
    ({ Id: id, ParentId: '', RepoTags: [`slipway-build/ns.app:${id.slice(7, 19)}`], RepoDigests: [], Created: now / 1000 - 3600, Size: 1000, SharedSize: 0, VirtualSize: 1000, Labels: labels, Containers: 0, ...extra }) as Docker.ImageInfo;
  const ours = (commit: string) => ({ 'slipway.dev/build-key': `key-${commit}`, 'slipway.dev/git-commit': commit, 'slipway.dev/cluster': 'c1' });
  const images = [
    image('sha256:aaaaaaaaaaaaaaaaaaaa', ours('a')), // referenced by digest
    image('sha256:bbbbbbbbbbbbbbbbbbbb', ours('b')), // referenced by tag (registry reference)
    image('sha256:cccccccccccccccccccc', ours('c')), // a Release of commit c is still building
    image('sha256:dddddddddddddddddddd', ours('d')), // unreferenced: collected
    image('sha256:eeeeeeeeeeeeeeeeeeee', ours('e'), { Created: now / 1000 - 60 }), // too young
    image('sha256:ffffffffffffffffffff', { ...ours('f'), 'slipway.dev/cluster': 'c2' }), // another installation
    image('sha256:gggggggggggggggggggg', {}), // not built by Slipway
    image('sha256:hhhhhhhhhhhhhhhhhhhh', ours('h'), { RepoTags: [], RepoDigests: ['reg.test/app@sha256:1111'] }), // pulled, referenced by registry digest
    image('sha256:iiiiiiiiiiiiiiiiiiii', ours('i'), { RepoTags: ['<none>:<none>'], RepoDigests: [] }), // untagged: removed by ID
    image('sha256:jjjjjjjjjjjjjjjjjjjj', { 'slipway.dev/build-key': 'key-j', 'slipway.dev/cluster': 'c1' }, { RepoTags: [] }), // a layer of a build still running
  ];
  const release = (spec: Record<string, unknown>) => ({ apiVersion: 'slipway.dev/v1alpha1', kind: 'Release', metadata: { name: 'r' }, spec }) as unknown as Release;
  const used = releaseReferences([
    release({ imageDigest: 'sha256:aaaaaaaaaaaaaaaaaaaa', image: 'slipway-build/ns.app:x', source: { commit: 'a' } }),
    release({ image: 'slipway-build/ns.app:bbbbbbbbbbbb', imageDigest: 'sha256:9999' }),
    release({ source: { git: '/repo', ref: 'main', commit: 'c' } }),
    release({ image: 'reg.test/app:tag', imageDigest: 'sha256:1111' }),
  ]);
  const unused = unusedBuiltImages(images, 'c1', used, now, 600_000);
  assert.deepEqual(unused.map((u) => [u.id, u.names]), [
    ['sha256:dddddddddddddddddddd', ['slipway-build/ns.app:dddddddddddd']],
    ['sha256:iiiiiiiiiiiiiiiiiiii', ['sha256:iiiiiiiiiiiiiiiiiiii']],
  ]);
});
