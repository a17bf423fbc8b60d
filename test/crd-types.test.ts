// The TypeScript types of the kinds are generated from crds/ and must match them (run `make generate`).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { renderCrdTypes } from '../scripts/crd-types.js';
import { CHECKOUT, CRDS_DIR } from './helpers/apiserver.js';

test('src/api/generated/crd-types.ts is up to date with crds/', () => {
  const committed = readFileSync(resolve(CHECKOUT, 'src/api/generated/crd-types.ts'), 'utf8');
  assert.equal(committed, renderCrdTypes(CRDS_DIR), 'the generated types are stale: run `make generate`');
});
