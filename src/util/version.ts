// Slipway's version, read once from the checkout's package.json (found by walking up from the
// compiled module, so it works from dist/ and from any other build directory).

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function readVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'slipway' && pkg.version) return pkg.version;
    } catch {
      // No (readable) package.json here: keep walking up.
    }
    const parent = dirname(dir);
    if (parent === dir) return '0.0.0-dev';
    dir = parent;
  }
}

/** The version in package.json, e.g. `0.1.0` (`0.0.0-dev` when it cannot be found). */
export const SLIPWAY_VERSION = readVersion();
