// Command-line flag parsing for slipctl, pflag-style like kubectl's: `-n X`, `-nX`, `-n=X`,
// `--namespace X`, `--namespace=X`, grouped boolean shorthands (`-Rf dir`), repeatable flags
// (`-f a -f b`), `--flag=false` for booleans, and `--` to end flags. Unknown flags are an error,
// because a mistyped flag silently ignored is worse than a refusal.

export type FlagType = 'string' | 'bool' | 'strings';

export interface FlagSpec {
  name: string;
  short?: string;
  type: FlagType;
  /** Shown in help; for strings the value placeholder comes from `value`. */
  description: string;
  value?: string;
  default?: string | boolean;
}

export type FlagValue = string | boolean | string[];

export interface ParsedArgs {
  flags: Map<string, FlagValue>;
  positional: string[];
}

export class UsageError extends Error {}

function setFlag(flags: Map<string, FlagValue>, spec: FlagSpec, value: string | boolean): void {
  if (spec.type === 'strings') {
    const list = (flags.get(spec.name) as string[] | undefined) ?? [];
    flags.set(spec.name, [...list, String(value)]);
  } else flags.set(spec.name, value);
}

function parseBool(spec: FlagSpec, text: string): boolean {
  if (['true', '1', 't', 'T', 'TRUE', 'True'].includes(text)) return true;
  if (['false', '0', 'f', 'F', 'FALSE', 'False'].includes(text)) return false;
  throw new UsageError(`invalid argument ${JSON.stringify(text)} for "--${spec.name}" flag: must be true or false`);
}

/** Parses `argv` against `specs`; flags may appear anywhere among the positional arguments. */
export function parseArgs(argv: readonly string[], specs: readonly FlagSpec[]): ParsedArgs {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const byShort = new Map(specs.filter((s) => s.short).map((s) => [s.short!, s]));
  const flags = new Map<string, FlagValue>();
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = eq > 0 ? arg.slice(2, eq) : arg.slice(2);
      const spec = byName.get(name);
      if (!spec) throw new UsageError(`unknown flag: --${name}`);
      if (spec.type === 'bool') setFlag(flags, spec, eq > 0 ? parseBool(spec, arg.slice(eq + 1)) : true);
      else if (eq > 0) setFlag(flags, spec, arg.slice(eq + 1));
      else if (i + 1 < argv.length) setFlag(flags, spec, argv[++i]!);
      else throw new UsageError(`flag needs an argument: --${name}`);
      continue;
    }
    if (arg.startsWith('-') && arg.length > 1) {
      // A group of shorthands: booleans until one that takes a value swallows the rest.
      for (let j = 1; j < arg.length; j++) {
        const c = arg[j]!;
        const spec = byShort.get(c);
        if (!spec) throw new UsageError(`unknown shorthand flag: '${c}' in ${arg}`);
        if (spec.type === 'bool') {
          if (arg[j + 1] === '=') {
            setFlag(flags, spec, parseBool(spec, arg.slice(j + 2)));
            break;
          }
          setFlag(flags, spec, true);
          continue;
        }
        let rest = arg.slice(j + 1);
        if (rest.startsWith('=')) rest = rest.slice(1);
        if (rest !== '') setFlag(flags, spec, rest);
        else if (i + 1 < argv.length) setFlag(flags, spec, argv[++i]!);
        else throw new UsageError(`flag needs an argument: '${c}' in -${c}`);
        break;
      }
      continue;
    }
    positional.push(arg);
  }
  return { flags, positional };
}

/** Typed accessors over a parse result, applying each spec's default. */
export class Flags {
  constructor(
    private readonly parsed: ParsedArgs,
    private readonly specs: readonly FlagSpec[],
  ) {}

  get positional(): string[] {
    return this.parsed.positional;
  }

  string(name: string): string | undefined {
    const v = this.parsed.flags.get(name);
    if (v !== undefined) return String(v);
    const d = this.specs.find((s) => s.name === name)?.default;
    return d === undefined ? undefined : String(d);
  }

  bool(name: string): boolean {
    const v = this.parsed.flags.get(name);
    if (typeof v === 'boolean') return v;
    return this.specs.find((s) => s.name === name)?.default === true;
  }

  strings(name: string): string[] {
    return (this.parsed.flags.get(name) as string[] | undefined) ?? [];
  }
}

/** Parses a kubectl-style duration (`30s`, `2m`, `1h30m`, `500ms`, or bare seconds) into milliseconds. */
export function parseDuration(text: string, flag: string): number {
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text) * 1000;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  for (let m; (m = re.exec(text)); ) {
    const n = Number(m[1]);
    total += m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : m[2] === 'm' ? n * 60_000 : n * 3_600_000;
    matched = re.lastIndex;
  }
  if (text === '' || matched !== text.length) throw new UsageError(`invalid duration ${JSON.stringify(text)} for --${flag} (examples: 30s, 2m, 1h)`);
  return total;
}

/** Renders flag specs for help text, one aligned line per flag. */
export function formatFlags(specs: readonly FlagSpec[]): string {
  const left = specs.map((s) => {
    const names = `${s.short ? `-${s.short}, ` : '    '}--${s.name}`;
    return s.type === 'bool' ? names : `${names}=${s.value ?? 'VALUE'}`;
  });
  const width = Math.max(...left.map((l) => l.length));
  return specs.map((s, i) => `  ${left[i]!.padEnd(width)}   ${s.description}`).join('\n');
}
