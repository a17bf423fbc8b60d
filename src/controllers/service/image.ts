// The release's artifact on each node: resolve the image reference to an image ID once, then make
// sure every node that runs a replica has exactly that ID, pulling by reference or, when no
// registry has it, streaming it from a node that does (`docker save` → `docker load`).

import type Docker from 'dockerode';

const statusOf = (err: unknown) => (err as { statusCode?: number }).statusCode;

export interface ResolvedImage {
  /** Local image ID, `sha256:…`: what containers are created from. */
  id: string;
  /** Registry digest when the image came from a registry, else the image ID. */
  digest: string;
  /** The image's USER (empty: root). */
  user: string;
}

export async function inspectImage(docker: Docker, ref: string): Promise<Docker.ImageInspectInfo | undefined> {
  try {
    return await docker.getImage(ref).inspect();
  } catch (err) {
    if (statusOf(err) === 404) return undefined;
    throw err;
  }
}

export async function pullImage(docker: Docker, ref: string, auth?: object): Promise<void> {
  const stream = await docker.pull(ref, auth ? { authconfig: auth } : {});
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(stream, (err: Error | null, output: Array<{ error?: string }>) => {
      const failed = output?.find((o) => o.error);
      if (err) reject(err);
      else if (failed) reject(new Error(failed.error));
      else resolve();
    });
  });
}

/** Resolves `ref` on `docker`, pulling it when absent. */
export async function resolveImage(docker: Docker, ref: string, auth?: object): Promise<ResolvedImage> {
  let info = await inspectImage(docker, ref);
  if (!info) {
    await pullImage(docker, ref, auth);
    info = await inspectImage(docker, ref);
    if (!info) throw new Error(`image ${ref} is not present after pulling it`);
  }
  const repoDigest = info.RepoDigests?.map((d) => d.split('@')[1]).find((d) => d?.startsWith('sha256:'));
  return { id: info.Id, digest: repoDigest ?? info.Id, user: info.Config?.User ?? '' };
}

/**
 * Makes `target` hold image `id` (known under `ref`). Tries a pull of `ref` and checks the result is
 * exactly `id`; otherwise copies it from the first source that has it. Throws when neither works,
 * or when the registry serves a different image under the same reference.
 */
export async function ensureImageOnNode(target: Docker, id: string, ref: string, sources: Docker[], auth?: object): Promise<'present' | 'pulled' | 'copied'> {
  if (await inspectImage(target, id)) return 'present';
  let pullError: string | undefined;
  if (ref !== id) {
    try {
      await pullImage(target, ref, auth);
      const pulled = await inspectImage(target, ref);
      if (pulled?.Id === id) return 'pulled';
      pullError = `the registry serves ${pulled?.Id ?? 'nothing'} for ${ref}, not the release's ${id}`;
    } catch (err) {
      pullError = (err as Error).message;
    }
  }
  for (const source of sources) {
    if (!(await inspectImage(source, id))) continue;
    const sourceInfo = await inspectImage(source, ref);
    const exportName = sourceInfo?.Id === id ? ref : id;
    const archive = (await source.getImage(exportName).get()) as NodeJS.ReadableStream;
    const loaded = (await target.loadImage(archive as unknown as NodeJS.ReadableStream, { quiet: true })) as NodeJS.ReadableStream;
    await drain(loaded);
    if (await inspectImage(target, id)) return 'copied';
  }
  throw new Error(`image ${id} (${ref}) is not on this node and could not be brought there: ${pullError ?? 'no node has it'}`);
}

async function drain(stream: NodeJS.ReadableStream): Promise<void> {
  const chunks: string[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk.toString());
  const text = chunks.join('');
  const error = /"error(?:Detail)?":\s*"?([^"}]+)/.exec(text);
  if (error) throw new Error(`docker load failed: ${error[1]}`);
}

/** Whether a container of this image runs as root, given the Service's runAsUser. */
export function runsAsRoot(imageUser: string, runAsUser: number | undefined): boolean {
  if (runAsUser !== undefined) return runAsUser === 0;
  const user = imageUser.split(':')[0] ?? '';
  return user === '' || user === '0' || user === 'root';
}

/** Pull failures that retrying cannot fix: refused credentials, or no such image or tag. */
export function isPermanentPullError(message: string): boolean {
  return /unauthorized|authentication required|no basic auth credentials|pull access denied|manifest unknown|not found: manifest|repository does not exist|invalid reference format|imagePullSecretRef/i.test(message);
}
