// Pure functions of the shared API module, checked by exact comparison: label selectors,
// JSONPath, names, deep equality.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { matchesLabels, parseLabelSelector, selectorFromObject } from '../src/api/labels.js';
import { evaluate, parseJsonPath, parseTemplate, renderTemplate } from '../src/api/jsonpath.js';
import { dns1123LabelProblems, qualifiedNameProblems } from '../src/api/names.js';
import { deepEqual } from '../src/api/deep-equal.js';
import { applyMergePatch } from '../src/api/merge-patch.js';

test('label selectors parse to requirements', () => {
  assert.deepEqual(parseLabelSelector('app=web, tier in (a,b),!legacy,env!=prod,x,n>3'), [
    { key: 'app', operator: 'In', values: ['web'] },
    { key: 'tier', operator: 'In', values: ['a', 'b'] },
    { key: 'legacy', operator: 'DoesNotExist', values: [] },
    { key: 'env', operator: 'NotIn', values: ['prod'] },
    { key: 'x', operator: 'Exists', values: [] },
    { key: 'n', operator: 'Gt', values: ['3'] },
  ]);
  assert.deepEqual(parseLabelSelector('a==b,c notin (d, e)'), [
    { key: 'a', operator: 'In', values: ['b'] },
    { key: 'c', operator: 'NotIn', values: ['d', 'e'] },
  ]);
  for (const bad of ['a in (', 'a=b=c', '!!a', 'a,', '=b', 'a in ()', 'Bad Key=x', 'a>b', 'a=' + 'v'.repeat(64)]) {
    assert.throws(() => parseLabelSelector(bad), Error, bad);
  }
});

test('label selectors match like Kubernetes (absent keys satisfy != and notin)', () => {
  const labels = { app: 'web', n: '5' };
  const m = (s: string) => matchesLabels(parseLabelSelector(s), labels);
  assert.equal(m('app=web'), true);
  assert.equal(m('app!=web'), false);
  assert.equal(m('tier!=x'), true);
  assert.equal(m('tier notin (x)'), true);
  assert.equal(m('tier in (x)'), false);
  assert.equal(m('!tier,app'), true);
  assert.equal(m('n>4,n<6'), true);
  assert.equal(m(''), true);
  assert.equal(matchesLabels(selectorFromObject({ role: 'app' }), { role: 'app', edge: 'true' }), true);
  assert.equal(matchesLabels(selectorFromObject({ matchExpressions: [{ key: 'edge', operator: 'Exists' }] }), { role: 'app' }), false);
});

test('JSONPath expressions and templates', () => {
  const obj = { status: { conditions: [{ type: 'Ready', status: 'True' }, { type: 'Degraded', status: 'False' }] }, spec: { ports: [1, 2, 3] } };
  assert.deepEqual(evaluate(parseJsonPath('.status.conditions[?(@.type=="Ready")].status'), obj), ['True']);
  assert.deepEqual(evaluate(parseJsonPath('{.spec.ports[-1]}'), obj), [3]);
  assert.deepEqual(evaluate(parseJsonPath('.spec.ports[0:2]'), obj), [1, 2]);
  assert.deepEqual(evaluate(parseJsonPath('..type'), obj), ['Ready', 'Degraded']);
  assert.deepEqual(evaluate(parseJsonPath('.missing.field'), obj), []);
  const list = { items: [{ metadata: { name: 'a' } }, { metadata: { name: 'b' } }] };
  assert.equal(renderTemplate(parseTemplate('{range .items[*]}{.metadata.name}{"\\n"}{end}'), list), 'a\nb\n');
  assert.equal(renderTemplate(parseTemplate('names: {.items[*].metadata.name}'), list), 'names: a b');
  assert.throws(() => parseTemplate('{range .items[*]}{.x}'));
  assert.throws(() => parseJsonPath('.a[?(@.b ==)]'));
});

test('names and qualified names', () => {
  assert.deepEqual(dns1123LabelProblems('web-1'), []);
  assert.equal(dns1123LabelProblems('Web').length, 1);
  assert.equal(dns1123LabelProblems('a'.repeat(64)).length, 1);
  assert.deepEqual(qualifiedNameProblems('slipway.dev/edge'), []);
  assert.ok(qualifiedNameProblems('a/b/c').length > 0);
  assert.ok(qualifiedNameProblems('Bad_Prefix/x').length > 0);
});

test('deepEqual ignores key order and undefined members', () => {
  assert.equal(deepEqual({ a: 1, b: [1, { c: 2 }] }, { b: [1, { c: 2 }], a: 1 }), true);
  assert.equal(deepEqual({ a: 1, b: undefined }, { a: 1 }), true);
  assert.equal(deepEqual([1, 2], [2, 1]), false);
  assert.equal(deepEqual({ a: null }, { a: undefined }), false);
});

test('merge patch (RFC 7386), including keys that shadow Object.prototype', () => {
  const target = { a: 'b', c: { d: 'e', f: 'g' }, list: [1, 2], labels: { hasOwnProperty: 'x', keep: 'y' } };
  const patched = applyMergePatch(target, { a: 'z', c: { f: null }, list: [3], labels: { hasOwnProperty: null, constructor: 'c' }, n: { deep: { er: 1 } } });
  assert.deepEqual(patched, { a: 'z', c: { d: 'e' }, list: [3], labels: { keep: 'y', constructor: 'c' }, n: { deep: { er: 1 } } });
  assert.deepEqual(target, { a: 'b', c: { d: 'e', f: 'g' }, list: [1, 2], labels: { hasOwnProperty: 'x', keep: 'y' } }, 'the target is not modified');
  assert.equal(applyMergePatch({ a: 1 }, 'replaced'), 'replaced');
  assert.deepEqual(applyMergePatch('scalar', { a: 1 }), { a: 1 });
  assert.equal(Object.getPrototypeOf(applyMergePatch({}, JSON.parse('{"__proto__": {"polluted": true}}'))), Object.prototype);
  assert.equal(({} as any).polluted, undefined);
});
