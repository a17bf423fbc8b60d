// `make generate`: writes src/api/generated/crd-types.ts from crds/.

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderCrdTypes } from './crd-types.js';

const checkout = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const target = resolve(checkout, 'src/api/generated/crd-types.ts');
mkdirSync(dirname(target), { recursive: true });
writeFileSync(target, renderCrdTypes(resolve(checkout, 'crds')));
console.log(`wrote ${target}`);
