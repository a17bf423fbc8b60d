// Minimal `--name value` / `--name=value` flag parsing for the Slipway daemons, with
// environment-variable fallbacks, so every option can come from either.

export function parseFlags(argv: string[]): Map<string, string> {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new Error(`unexpected argument ${JSON.stringify(arg)}`);
    const eq = arg.indexOf('=');
    if (eq > 0) flags.set(arg.slice(2, eq), arg.slice(eq + 1));
    else if (i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) flags.set(arg.slice(2), argv[++i]!);
    else flags.set(arg.slice(2), 'true');
  }
  return flags;
}

/** The flag's value, else the environment variable's, else the default. */
export function option(flags: Map<string, string>, name: string, env: string, fallback: string): string {
  return flags.get(name) ?? process.env[env] ?? fallback;
}
