// slipctl's pure builders, tested by exact comparison: the three-way merge patch, the
// last-applied record, flag parsing, ages, manifest parsing, `wait --for` and table layout.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LAST_APPLIED_ANNOTATION } from '../src/api/types.js';
import { parseArgs, parseDuration, UsageError, type FlagSpec } from '../cli/args.js';
import { parseManifests } from '../cli/manifests.js';
import { formatRows, humanDuration } from '../cli/printers.js';
import { appliedConfiguration, threeWayMergePatch, withLastApplied } from '../cli/three-way-merge.js';
import { conditionMet, parseFor } from '../cli/commands/wait.js';
import { renderExplain, typeLabel } from '../cli/commands/explain.js';

test('three-way merge: deletions from original, changes from modified, objects merged, arrays replaced', () => {
  const original = { spec: { a: 1, b: 2, list: [1, 2], nested: { x: 1, y: 2 } }, metadata: { labels: { app: 'x' } } };
  const modified = { spec: { a: 1, list: [1, 2, 3], nested: { x: 5 } }, metadata: { labels: { app: 'x' } } };
  const current = { spec: { a: 1, b: 2, list: [1, 2], nested: { x: 1, y: 2, z: 9 }, server: true }, metadata: { labels: { app: 'x', other: 'kept' } }, status: { s: 1 } };
  assert.deepEqual(threeWayMergePatch(original, modified, current), { spec: { b: null, list: [1, 2, 3], nested: { x: 5, y: null } } });
});

test('three-way merge: nothing to do gives {}; removed-and-already-gone fields are not sent', () => {
  const obj = { spec: { a: 1, list: [{ n: 1 }] } };
  assert.deepEqual(threeWayMergePatch(obj, obj, { ...obj, status: {} }), {});
  assert.deepEqual(threeWayMergePatch({ spec: { gone: 1 } }, { spec: {} }, { spec: {} }), {});
  assert.deepEqual(threeWayMergePatch(undefined, { spec: { a: 1 } }, { spec: { a: 1, b: 2 } }), {}, 'without a record nothing is deleted');
  assert.deepEqual(threeWayMergePatch(undefined, { spec: { o: { a: 1, b: null } } }, { spec: { o: 'scalar' } }), { spec: { o: { a: 1 } } });
});

test('the last-applied record leaves out status, server fields and itself', () => {
  const manifest = {
    apiVersion: 'v1',
    kind: 'X',
    metadata: { name: 'a', uid: 'u', resourceVersion: '5', generation: 2, creationTimestamp: 't', annotations: { [LAST_APPLIED_ANNOTATION]: 'old' } },
    spec: { a: 1 },
    status: { b: 2 },
  };
  assert.deepEqual(appliedConfiguration(manifest), { apiVersion: 'v1', kind: 'X', metadata: { name: 'a' }, spec: { a: 1 } });
  const sent = withLastApplied(manifest);
  assert.deepEqual(JSON.parse(sent.metadata.annotations![LAST_APPLIED_ANNOTATION]!), appliedConfiguration(manifest));
  assert.equal(sent.status, undefined);
});

const SPECS: FlagSpec[] = [
  { name: 'namespace', short: 'n', type: 'string', description: '' },
  { name: 'output', short: 'o', type: 'string', description: '' },
  { name: 'filename', short: 'f', type: 'strings', description: '' },
  { name: 'recursive', short: 'R', type: 'bool', description: '' },
  { name: 'wait', type: 'bool', default: true, description: '' },
];

test('flag parsing: long and short forms, grouped shorthands, repeats, booleans and --', () => {
  const p = parseArgs(['get', '-nfoo', '-oyaml', 'svc', '--namespace=bar', '-Rf', 'dir', '-f=x', '--wait=false', '--', '-n'], SPECS);
  assert.deepEqual(p.positional, ['get', 'svc', '-n']);
  assert.equal(p.flags.get('namespace'), 'bar');
  assert.equal(p.flags.get('output'), 'yaml');
  assert.deepEqual(p.flags.get('filename'), ['dir', 'x']);
  assert.equal(p.flags.get('recursive'), true);
  assert.equal(p.flags.get('wait'), false);
  assert.equal(parseArgs(['-o', 'json'], SPECS).flags.get('output'), 'json');
  assert.throws(() => parseArgs(['--colour'], SPECS), (e: Error) => e instanceof UsageError && e.message === 'unknown flag: --colour');
  assert.throws(() => parseArgs(['-x'], SPECS), /unknown shorthand flag: 'x' in -x/);
  assert.throws(() => parseArgs(['-n'], SPECS), /flag needs an argument/);
  assert.throws(() => parseArgs(['--wait=maybe'], SPECS), /must be true or false/);
  assert.equal(parseDuration('1m30s', 'timeout'), 90_000);
  assert.equal(parseDuration('500ms', 'timeout'), 500);
  assert.throws(() => parseDuration('soon', 'timeout'), /invalid duration/);
});

test('ages print like kubectl', () => {
  const s = 1000;
  const cases: [number, string][] = [
    [-5 * s, '<invalid>'],
    [45 * s, '45s'],
    [119 * s, '119s'],
    [125 * s, '2m5s'],
    [12 * 60 * s, '12m'],
    [3 * 3600 * s, '3h'],
    [3 * 3600 * s + 20 * 60 * s, '3h20m'],
    [30 * 3600 * s, '30h'],
    [5 * 86400 * s, '5d'],
    [5 * 86400 * s + 3 * 3600 * s, '5d3h'],
    [40 * 86400 * s, '40d'],
    [3 * 365 * 86400 * s, '3y'],
  ];
  for (const [ms, text] of cases) assert.equal(humanDuration(ms), text, `${ms} ms`);
});

test('manifests: empty documents skipped, Lists expanded, errors name the file and document', () => {
  const docs = parseManifests('---\n# nothing\n---\napiVersion: v1\nkind: A\nmetadata: {name: a}\n---\n', 'f.yaml');
  assert.deepEqual(docs.map((d) => [d.document, d.object.metadata.name]), [[2, 'a']]);
  const list = parseManifests(JSON.stringify({ kind: 'List', apiVersion: 'v1', items: [{ apiVersion: 'v1', kind: 'A', metadata: { name: 'x' } }, { apiVersion: 'v1', kind: 'B', metadata: { name: 'y' } }] }), 'l.json');
  assert.deepEqual(list.map((d) => d.object.kind), ['A', 'B']);
  assert.throws(() => parseManifests('apiVersion: v1\nkind: A\nmetadata: {name: a}\n---\nkind: [\n', 'f.yaml'), /^CliError: error parsing f\.yaml \(document 2\): /);
  assert.throws(() => parseManifests('kind: A\nmetadata: {name: a}\n', 'f.yaml'), /error validating f\.yaml: apiVersion not set/);
  assert.throws(() => parseManifests('{"kind": ', 'f.json'), /error parsing f\.json: /);
});

test('wait --for parsing and matching', () => {
  assert.deepEqual(parseFor('condition=Ready'), { kind: 'condition', type: 'Ready', status: 'True' });
  assert.deepEqual(parseFor('condition=Ready=False'), { kind: 'condition', type: 'Ready', status: 'False' });
  const jp = parseFor('jsonpath={.status.conditions[?(@.type=="Ready")].status}=True');
  assert.equal(jp.kind === 'jsonpath' && jp.value, 'True');
  const obj = { apiVersion: 'v1', kind: 'A', metadata: { name: 'a', generation: 2 }, status: { conditions: [{ type: 'Ready', status: 'True', observedGeneration: 1 }] } };
  assert.equal(conditionMet(jp, obj), true);
  assert.equal(conditionMet(parseFor('condition=ready'), obj), false, 'a condition about an older generation does not count');
  assert.equal(conditionMet(parseFor('delete'), null), true);
  assert.throws(() => parseFor('phase=Ready'), /unrecognized --for/);
});

test('tables: cells padded to the widest plus three, last column unpadded', () => {
  assert.equal(formatRows([['NAME', 'AGE'], ['a-long-name', '5s']]), 'NAME          AGE\na-long-name   5s\n');
});

test('explain: type labels and unknown fields', () => {
  assert.equal(typeLabel({ type: 'array', items: { type: 'object' } }), '[]Object');
  assert.equal(typeLabel({ type: 'object', additionalProperties: { type: 'string' } }), 'map[string]string');
  const schema = { type: 'object', properties: { spec: { type: 'object', description: 'The spec.', properties: { a: { type: 'string', description: 'First. More.' } } } } };
  assert.equal(
    renderExplain({ group: 'g', kind: 'K', version: 'v1', schema, path: ['spec'], recursive: false }),
    'GROUP:      g\nKIND:       K\nVERSION:    v1\n\nFIELD: spec <Object>\n\nDESCRIPTION:\n    The spec.\n\nFIELDS:\n  a\t<string>\n    First.\n',
  );
  assert.throws(() => renderExplain({ group: 'g', kind: 'K', version: 'v1', schema, path: ['spec', 'b'], recursive: false }), /field "spec\.b" does not exist in K/);
});
