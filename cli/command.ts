// The shape every slipctl command has (name, usage, flags, run) and the flags several commands
// share, so that `main.ts` stays a small dispatcher and help text is generated from the same data
// the parser uses.

import type { FlagSpec, Flags } from './args.js';
import type { Session } from './session.js';

export interface CommandContext {
  session: Session;
  stdout(text: string): void;
  stderr(text: string): void;
  /** All of standard input (for `-f -`). */
  readStdin(): string;
  now(): number;
}

export interface Command {
  name: string;
  summary: string;
  /** The synopsis after `slipctl`, e.g. `get KIND [NAME...] [flags]`. */
  usage: string;
  description?: string;
  examples?: string[];
  flags: FlagSpec[];
  /** Resolves to the exit code. */
  run(ctx: CommandContext, flags: Flags): Promise<number>;
}

export const GLOBAL_FLAGS: FlagSpec[] = [
  { name: 'server', type: 'string', value: 'URL', description: 'API server URL (overrides SLIPWAY_SERVER and the config file).' },
  { name: 'certificate-authority', type: 'string', value: 'FILE', description: 'PEM CA an https server must be signed by (overrides the config\'s certificate-authority).' },
  { name: 'namespace', short: 'n', type: 'string', value: 'NS', description: 'Namespace for this request (default: the config\'s namespace, else "default").' },
  { name: 'help', short: 'h', type: 'bool', description: 'Show help for the command.' },
];

export const FILENAME: FlagSpec = { name: 'filename', short: 'f', type: 'strings', value: 'FILE|DIR|-', description: 'Manifest file, directory or - for standard input; repeatable.' };
export const RECURSIVE: FlagSpec = { name: 'recursive', short: 'R', type: 'bool', description: 'Also read the subdirectories of directories given with -f.' };
export const SELECTOR: FlagSpec = { name: 'selector', short: 'l', type: 'string', value: 'SELECTOR', description: 'Label selector, e.g. app=web,tier in (a,b),!legacy.' };
export const ALL_NAMESPACES: FlagSpec = { name: 'all-namespaces', short: 'A', type: 'bool', description: 'List across all namespaces.' };
export const OUTPUT = (formats: string): FlagSpec => ({ name: 'output', short: 'o', type: 'string', value: 'FORMAT', description: `Output format: ${formats}.` });
export const TIMEOUT = (fallback: string): FlagSpec => ({ name: 'timeout', type: 'string', value: 'DURATION', default: fallback, description: `How long to wait (e.g. 30s, 2m); default ${fallback}.` });
