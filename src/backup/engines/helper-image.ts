// The image of the volume engine's one-shot helper container. By default Slipway's own
// `slipway/backup-helper:<version>`: FROM scratch, the manager host's static busybox as
// /bin/busybox with `sh`, `tar` and `rm` linked to it, built on the node through its Docker
// connection when the node lacks it, so no registry is ever needed (air-gapped nodes work).
// An explicitly chosen image is never pulled: if the node lacks it, the error names image and node.
// The build context is data (helperBuildContext, a deterministic tar); concurrent first uses
// in one process share one build, and building the same tag twice elsewhere is harmless.

import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type Docker from 'dockerode';
import { dockerMessage, dockerStatus } from '../../docker/errors.js';
import { SLIPWAY_VERSION } from '../../util/version.js';

/** The default helper image, built on each node by Slipway itself. */
export const HELPER_IMAGE = `slipway/backup-helper:${SLIPWAY_VERSION}`;
/** Bump when the image's contents change, so images built from an older recipe are rebuilt. */
export const HELPER_RECIPE = '1';
export const HELPER_IMAGE_LABELS = {
  'slipway.dev/managed-by': 'slipway',
  'slipway.dev/role': 'backup-helper',
  'slipway.dev/helper-recipe': HELPER_RECIPE,
} as const;
/** Where the static busybox comes from on the manager host (Debian's busybox-static). */
export const DEFAULT_BUSYBOX = '/bin/busybox';
/** The busybox applets the volume engine runs. */
const APPLETS = ['sh', 'tar', 'rm'];

const DOCKERFILE = `FROM scratch
COPY bin/ /bin/
ENV PATH=/bin
LABEL ${Object.entries(HELPER_IMAGE_LABELS)
  .map(([k, v]) => `${k}="${v}"`)
  .join(' ')}
`;

// ---------------------------------------------------------------- the build context (pure)

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

type TarEntry = { name: string; mode: number } & ({ type: 'file'; data: Buffer } | { type: 'dir' } | { type: 'symlink'; target: string });

/** One ustar header (uid/gid 0, mtime 0, so the same input gives the same bytes). */
function tarHeader(e: TarEntry): Buffer {
  const h = Buffer.alloc(512);
  h.write(e.name, 0, 100, 'utf8');
  h.write(octal(e.mode, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii');
  h.write(octal(0, 8), 116, 'ascii');
  h.write(octal(e.type === 'file' ? e.data.length : 0, 12), 124, 'ascii');
  h.write(octal(0, 12), 136, 'ascii');
  h.write(' '.repeat(8), 148, 'ascii');
  h.write(e.type === 'file' ? '0' : e.type === 'dir' ? '5' : '2', 156, 'ascii');
  if (e.type === 'symlink') h.write(e.target, 157, 100, 'utf8');
  h.write('ustar\x0000', 257, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return h;
}

/** The tar archive of `entries` (ustar, with the two zero blocks at the end). */
export function tarArchive(entries: readonly TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    parts.push(tarHeader(e));
    if (e.type === 'file') parts.push(e.data, Buffer.alloc((512 - (e.data.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** The build context of the helper image: its Dockerfile, bin/busybox and the applet links. */
export function helperBuildContext(busybox: Buffer): Buffer {
  return tarArchive([
    { name: 'Dockerfile', mode: 0o644, type: 'file', data: Buffer.from(DOCKERFILE) },
    { name: 'bin/', mode: 0o755, type: 'dir' },
    { name: 'bin/busybox', mode: 0o755, type: 'file', data: busybox },
    ...APPLETS.map((a): TarEntry => ({ name: `bin/${a}`, mode: 0o777, type: 'symlink', target: 'busybox' })),
  ]);
}

// ---------------------------------------------------------------- the busybox binary

const ELF_MACHINES: Record<number, string> = { 3: 'i386', 40: 'arm', 62: 'x86_64', 183: 'aarch64' };

/** What an ELF binary is: its architecture (when known) and whether it needs a dynamic loader. */
export function elfInfo(bin: Buffer): { arch?: string; static: boolean } | undefined {
  if (bin.length < 52 || bin.readUInt32BE(0) !== 0x7f454c46 || bin[5] !== 1) return undefined; // little-endian ELF only
  const is64 = bin[4] === 2;
  const phoff = is64 ? Number(bin.readBigUInt64LE(32)) : bin.readUInt32LE(28);
  const phentsize = bin.readUInt16LE(is64 ? 54 : 42);
  const phnum = bin.readUInt16LE(is64 ? 56 : 44);
  let interp = false;
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (at + 4 > bin.length) return undefined;
    if (bin.readUInt32LE(at) === 3) interp = true; // PT_INTERP
  }
  const arch = ELF_MACHINES[bin.readUInt16LE(18)];
  return { ...(arch ? { arch } : {}), static: !interp };
}

/** Docker's `Architecture` (uname -m) in the names elfInfo uses. */
function nodeArch(architecture: string | undefined): string | undefined {
  const a = architecture?.toLowerCase();
  if (!a) return undefined;
  if (a === 'x86_64' || a === 'amd64') return 'x86_64';
  if (a === 'aarch64' || a === 'arm64') return 'aarch64';
  if (a.startsWith('arm')) return 'arm';
  if (/^i[3-6]86$/.test(a)) return 'i386';
  return a;
}

async function readBusybox(path: string, where: string, docker: Docker): Promise<Buffer> {
  const bin = await readFile(path).catch((e: Error) => {
    throw new Error(`building ${HELPER_IMAGE} for ${where}: cannot read ${path} (install busybox-static on the manager host): ${e.message}`);
  });
  const elf = elfInfo(bin);
  if (!elf) throw new Error(`building ${HELPER_IMAGE} for ${where}: ${path} is not a little-endian ELF executable`);
  if (!elf.static) throw new Error(`building ${HELPER_IMAGE} for ${where}: ${path} is dynamically linked; install busybox-static on the manager host`);
  const arch = nodeArch((await docker.info().catch(() => undefined) as { Architecture?: string } | undefined)?.Architecture);
  if (elf.arch && arch && elf.arch !== arch) {
    throw new Error(`building ${HELPER_IMAGE} for ${where}: ${path} is built for ${elf.arch} but the node is ${arch}; set spec.target.volume.helperImage to an image present on the node`);
  }
  return bin;
}

// ---------------------------------------------------------------- on the node

const nodeName = (node?: string) => (node ? `node ${node}` : 'the node');

/** The image's labels, or undefined when the node does not have it. */
async function imageLabels(docker: Docker, image: string, where: string): Promise<Record<string, string> | undefined> {
  try {
    return (await docker.getImage(image).inspect()).Config?.Labels ?? {};
  } catch (e) {
    if (dockerStatus(e) === 404) return undefined;
    throw new Error(`inspecting helper image ${image} on ${where} failed: ${dockerMessage(e)}`);
  }
}

async function build(docker: Docker, where: string, busyboxPath: string): Promise<void> {
  const context = helperBuildContext(await readBusybox(busyboxPath, where, docker));
  let output: Array<{ error?: string }>;
  try {
    const stream = await docker.buildImage(Readable.from([context]), { t: HELPER_IMAGE, rm: true, forcerm: true });
    output = await new Promise((resolve, reject) =>
      docker.modem.followProgress(stream, (err: Error | null, res: Array<{ error?: string }>) => (err ? reject(err) : resolve(res))),
    );
  } catch (e) {
    throw new Error(`building ${HELPER_IMAGE} on ${where} failed: ${dockerMessage(e)}`);
  }
  const failure = output.find((o) => o.error);
  if (failure) throw new Error(`building ${HELPER_IMAGE} on ${where} failed: ${failure.error}`);
}

/** Builds in progress in this process, per Docker connection: concurrent first uses share one. */
const building = new WeakMap<Docker, Promise<void>>();

/**
 * Makes sure the node has the current default helper image, building it there if it is missing
 * or was built from an older recipe. Returns the image to run.
 */
export async function ensureHelperImage(docker: Docker, node?: string, busyboxPath = DEFAULT_BUSYBOX): Promise<string> {
  const where = nodeName(node);
  const current = async () => (await imageLabels(docker, HELPER_IMAGE, where))?.['slipway.dev/helper-recipe'] === HELPER_RECIPE;
  if (await current()) return HELPER_IMAGE;
  let pending = building.get(docker);
  if (!pending) {
    pending = build(docker, where, busyboxPath).finally(() => building.delete(docker));
    building.set(docker, pending);
  }
  await pending;
  if (!(await current())) throw new Error(`building ${HELPER_IMAGE} on ${where} finished but the image is missing or unlabelled`);
  return HELPER_IMAGE;
}

/** Checks that an explicitly chosen helper image is on the node; it is never pulled. */
export async function requireHelperImage(docker: Docker, image: string, node?: string): Promise<string> {
  const where = nodeName(node);
  if (await imageLabels(docker, image, where)) return image;
  throw new Error(
    `helper image ${image} is not present on ${where}; Slipway never pulls it (registries may be unreachable): ` +
      `load it onto the node (docker load), or leave spec.target.volume.helperImage unset to use ${HELPER_IMAGE}, which Slipway builds on the node itself`,
  );
}
