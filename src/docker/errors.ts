// Reading dockerode errors: the Engine's own message (from the JSON body) and its HTTP status.

interface DockerErr {
  statusCode?: number;
  json?: { message?: string };
  message: string;
}

/** The Docker Engine's message for a failed call, else the error's own message. */
export function dockerMessage(e: unknown): string {
  const err = e as DockerErr;
  return err.json?.message ?? err.message;
}

/** The HTTP status of a failed Docker Engine call (404: no such object). */
export function dockerStatus(e: unknown): number | undefined {
  return (e as DockerErr).statusCode;
}
