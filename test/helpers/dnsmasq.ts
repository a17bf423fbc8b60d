// A real DNS server for domain tests: Debian's dnsmasq on a free loopback port, answering only the
// records a test sets (TXT, A, CNAME). dnsmasq does not re-read TXT or CNAME records on SIGHUP, so a
// change rewrites its conf file and restarts it on the same port (a few milliseconds).

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Resolver } from 'node:dns/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';

export interface DnsRecords {
  /** name → TXT values */
  txt?: Record<string, string[]>;
  /** name → IPv4 */
  a?: Record<string, string>;
  /** alias → target (the target must have an A record here too: dnsmasq only aliases names it knows) */
  cname?: Record<string, string>;
}

export interface TestDns {
  /** `127.0.0.1:PORT`, for dns.Resolver.setServers and pebble -dnsserver. */
  readonly server: string;
  readonly port: number;
  /** Replaces every record and waits until dnsmasq answers with them. */
  setRecords(records: DnsRecords): Promise<void>;
  /** Adds to the current records. */
  addRecords(records: DnsRecords): Promise<void>;
  stop(): Promise<void>;
}

const SENTINEL = 'dnsmasq-ready.slipway.test';

/** The dnsmasq conf file text for a set of records (one generation number, so a test can tell a restart happened). */
export function dnsmasqConf(records: DnsRecords, generation: number): string {
  const lines = [`txt-record=${SENTINEL},${generation}`];
  for (const [name, values] of Object.entries(records.txt ?? {})) for (const v of values) lines.push(`txt-record=${name},"${v}"`);
  for (const [name, ip] of Object.entries(records.a ?? {})) lines.push(`host-record=${name},${ip}`);
  for (const [alias, target] of Object.entries(records.cname ?? {})) lines.push(`cname=${alias},${target}`);
  return `${lines.join('\n')}\n`;
}

/**
 * Starts dnsmasq authoritative-like for `zone` (default `test`): names in it that have no record
 * get NXDOMAIN/NODATA as from a real DNS server, not REFUSED.
 */
export async function startDnsmasq(initial: DnsRecords = {}, zone = 'test'): Promise<TestDns> {
  const dir = await mkdtemp(join(tmpdir(), 'slw-dns-'));
  const conf = join(dir, 'records.conf');
  const port = await freePort();
  const server = `127.0.0.1:${port}`;
  const resolver = new Resolver({ timeout: 300, tries: 1 });
  resolver.setServers([server]);
  let records: DnsRecords = { txt: {}, a: {}, cname: {} };
  let generation = 0;
  let child: ChildProcess | undefined;
  let output = '';

  const stopChild = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      c.kill('SIGKILL');
    });
  };

  const restart = async () => {
    generation++;
    await writeFile(conf, dnsmasqConf(records, generation));
    await stopChild();
    const args = ['--keep-in-foreground', `--port=${port}`, '--listen-address=127.0.0.1', '--bind-interfaces', '--no-resolv', '--no-hosts', '--no-poll', '--pid-file=', '--user=root', '--group=root', '--cache-size=0', `--local=/${zone}/`, `--conf-file=${conf}`, '--log-facility=-'];
    const c = spawn('dnsmasq', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    c.stdout!.on('data', (d) => (output = (output + d).slice(-20_000)));
    c.stderr!.on('data', (d) => (output = (output + d).slice(-20_000)));
    child = c;
    const deadline = Date.now() + 5_000;
    for (;;) {
      if (c.exitCode !== null) throw new Error(`dnsmasq exited with ${c.exitCode}: ${output.slice(-2000)}`);
      const answer = await resolver.resolveTxt(SENTINEL).catch(() => [] as string[][]);
      if (answer.some((chunks) => chunks.join('') === String(generation))) return;
      if (Date.now() > deadline) throw new Error(`dnsmasq on ${server} did not answer within 5 s: ${output.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  const merge = (base: DnsRecords, extra: DnsRecords): DnsRecords => ({
    txt: { ...base.txt, ...extra.txt },
    a: { ...base.a, ...extra.a },
    cname: { ...base.cname, ...extra.cname },
  });

  records = merge(records, initial);
  await restart();
  process.once('exit', () => child?.kill('SIGKILL'));
  return {
    server,
    port,
    async setRecords(next) {
      records = merge({}, next);
      await restart();
    },
    async addRecords(extra) {
      records = merge(records, extra);
      await restart();
    },
    async stop() {
      await stopChild();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
