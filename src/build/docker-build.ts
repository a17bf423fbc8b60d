// `docker build` through dockerode on a node's engine (the legacy builder): the build context is
// streamed as a tar (from `git archive`), every output line goes to the log as it arrives,
// and the result is the image ID. Aborting the signal ends the request, which cancels the build.

import type Docker from 'dockerode';

export interface DockerBuildOptions {
  /** The build context as a tar stream. */
  context: NodeJS.ReadableStream;
  /** Dockerfile path relative to the context. */
  dockerfile: string;
  tag: string;
  buildArgs?: Record<string, string>;
  target?: string;
  labels: Record<string, string>;
  signal: AbortSignal;
  /** Receives the build output, line by line. */
  onOutput: (text: string) => void;
}

/** Builds the image and returns its ID; throws with the engine's error when the build fails. */
export async function dockerBuild(docker: Docker, o: DockerBuildOptions): Promise<string> {
  const stream = (await docker.buildImage(o.context, {
    t: o.tag,
    dockerfile: o.dockerfile,
    ...(o.buildArgs && Object.keys(o.buildArgs).length ? { buildargs: o.buildArgs } : {}),
    ...(o.target ? { target: o.target } : {}),
    labels: o.labels,
    rm: true,
    forcerm: true,
    abortSignal: o.signal,
  } as Docker.ImageBuildOptions)) as NodeJS.ReadableStream;
  let id: string | undefined;
  let failure: string | undefined;
  let pending = '';
  const handle = (line: string) => {
    if (!line.trim()) return;
    let msg: { stream?: string; status?: string; error?: string; errorDetail?: { message?: string }; aux?: { ID?: string } };
    try {
      msg = JSON.parse(line);
    } catch {
      o.onOutput(`${line}\n`);
      return;
    }
    if (msg.stream) o.onOutput(msg.stream);
    if (msg.status) o.onOutput(`${msg.status}\n`);
    if (msg.aux?.ID) id = msg.aux.ID;
    if (msg.error) {
      failure = msg.errorDetail?.message ?? msg.error;
      o.onOutput(`ERROR: ${failure}\n`);
    }
  };
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      pending += chunk.toString('utf8');
      const lines = pending.split('\n');
      pending = lines.pop()!;
      lines.forEach(handle);
    }
    handle(pending);
  } catch (err) {
    if (o.signal.aborted) throw new Error(`build cancelled: ${String(o.signal.reason?.message ?? o.signal.reason ?? 'aborted')}`);
    throw err;
  }
  if (o.signal.aborted) throw new Error(`build cancelled: ${String(o.signal.reason?.message ?? o.signal.reason ?? 'aborted')}`);
  if (failure) throw new Error(failure);
  if (id) return id;
  // Older engines only print "Successfully built <short id>": the tag names the result.
  return (await docker.getImage(o.tag).inspect()).Id;
}

