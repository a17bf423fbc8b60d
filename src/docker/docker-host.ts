// Connects a dockerode client to a node's Docker Engine as described by Node.spec.docker:
// a local Unix socket, or a remote socket reached through one persistent SSH tunnel.

import type { Duplex } from 'node:stream';
import Docker from 'dockerode';
import { SshTunnel } from './ssh-tunnel.js';

/** Node.spec.docker (crds/nodes.slipway.dev.yaml); the private key comes from the referenced Secret. */
export interface NodeDockerSpec {
  socket?: string;
  ssh?: {
    host: string;
    /** Default 22. */
    port?: number;
    user: string;
    /** Pinned host key, `ssh-ed25519 AAAA... [comment]`. */
    hostKey: string;
    /** Remote Docker socket; default /var/run/docker.sock. */
    dockerSocket?: string;
  };
}

export interface DockerHost {
  readonly docker: Docker;
  /** Where the engine is, for messages: `unix:///var/run/docker.sock` or `ssh://root@host:22/var/run/docker.sock`. */
  readonly description: string;
  /** A TCP connection from the remote host to `host:port` on its side, over the node's SSH connection (ssh nodes only). */
  openTcp?(host: string, port: number): Promise<Duplex>;
  close(): Promise<void>;
}

export const DEFAULT_SSH_PORT = 22;
export const DEFAULT_DOCKER_SOCKET = '/var/run/docker.sock';

export interface ConnectOptions {
  /** Called when the SSH connection of an `ssh` host goes down or comes back. */
  onStateChange?: (state: { connected: boolean; error?: Error }) => void;
}

/**
 * Connects to the engine. For `ssh` the SSH connection is established before this resolves (and a
 * wrong host key, failed authentication or unreachable host rejects); the engine itself is not
 * contacted, so call `docker.ping()` to check it.
 */
export async function connectDockerHost(
  spec: NodeDockerSpec,
  privateKey?: string,
  options: ConnectOptions = {},
): Promise<DockerHost> {
  if (spec.socket && spec.ssh) throw new Error('node docker spec sets both socket and ssh: set exactly one');
  if (spec.socket) {
    const docker = new Docker({ socketPath: spec.socket });
    return { docker, description: `unix://${spec.socket}`, close: async () => {} };
  }
  if (!spec.ssh) throw new Error('node docker spec sets neither socket nor ssh: set exactly one');

  const { host, user, hostKey } = spec.ssh;
  const port = spec.ssh.port ?? DEFAULT_SSH_PORT;
  const dockerSocket = spec.ssh.dockerSocket ?? DEFAULT_DOCKER_SOCKET;
  if (!privateKey) throw new Error(`no SSH private key given for ${user}@${host}:${port}`);

  const tunnel = await SshTunnel.open({
    host,
    port,
    username: user,
    privateKey,
    hostKey,
    onStateChange: options.onStateChange,
  });
  const agent = tunnel.createAgent(dockerSocket);
  // Host and port are placeholders: every connection goes through the agent to the remote socket.
  // docker-modem passes `agent` to http.request; @types/dockerode does not declare it.
  const dockerOptions: Docker.DockerOptions & { agent: typeof agent } = { protocol: 'http', host: 'docker', port: 80, agent };
  const docker = new Docker(dockerOptions);
  return {
    docker,
    description: `ssh://${user}@${host}:${port}${dockerSocket}`,
    openTcp: (targetHost, targetPort) => tunnel.openTcp(targetHost, targetPort),
    async close() {
      agent.destroy();
      await tunnel.close();
    },
  };
}
