// Pushing a built image to a registry through dockerode, returning the manifest digest the
// registry reports (`docker push` prints it as `digest: sha256:…`); nodes pull by that digest.

import type Docker from 'dockerode';

/** Splits `host:port/path:tag` into repository and tag. */
export function splitTag(ref: string): { repository: string; tag: string } {
  const at = ref.lastIndexOf(':');
  if (at <= ref.lastIndexOf('/')) return { repository: ref, tag: 'latest' };
  return { repository: ref.slice(0, at), tag: ref.slice(at + 1) };
}

/** Tags `imageId` as `ref` and pushes it; returns the registry digest. */
export async function pushImage(docker: Docker, imageId: string, ref: string, auth: object | undefined, onOutput: (text: string) => void = () => {}): Promise<string> {
  const { repository, tag } = splitTag(ref);
  await docker.getImage(imageId).tag({ repo: repository, tag });
  const stream = (await docker.getImage(ref).push({ tag, ...(auth ? { authconfig: auth } : {}) } as object)) as NodeJS.ReadableStream;
  const output = await new Promise<Array<{ status?: string; error?: string; errorDetail?: { message?: string }; aux?: { Digest?: string } }>>((resolve, reject) =>
    docker.modem.followProgress(stream, (err: Error | null, res: unknown[]) => (err ? reject(err) : resolve(res as never)), (event: { status?: string; id?: string }) => {
      if (event.status && !event.id) onOutput(`${event.status}\n`);
    }),
  );
  const failed = output.find((o) => o.error);
  if (failed) throw new Error(`push of ${ref} failed: ${failed.errorDetail?.message ?? failed.error}`);
  const digest = output.map((o) => o.aux?.Digest ?? /digest: (sha256:[a-f0-9]{64})/.exec(o.status ?? '')?.[1]).find(Boolean);
  if (!digest) throw new Error(`push of ${ref} reported no digest`);
  return digest;
}

/** The digest under which `info` is stored in `repository`, if it was pushed or pulled there. */
export function repoDigestIn(info: Docker.ImageInspectInfo, repository: string): string | undefined {
  return info.RepoDigests?.find((d) => d.startsWith(`${repository}@`))?.split('@')[1];
}
