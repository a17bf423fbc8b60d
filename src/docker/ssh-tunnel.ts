// One persistent SSH connection to a node, with a pinned host key, over which Slipway opens
// streams to Unix sockets on the remote host (the remote Docker socket). An http.Agent on top
// lets dockerode talk to the remote Docker Engine through it. The connection is kept alive with
// SSH keepalives and re-established with exponential backoff after it drops.

import { createHash } from 'node:crypto';
import { Agent, type ClientRequestArgs } from 'node:http';
import type { Duplex } from 'node:stream';
import { inspect } from 'node:util';
import { Client, type ClientChannel, type ConnectConfig, type ServerHostKeyAlgorithm } from 'ssh2';

export interface SshTunnelOptions {
  host: string;
  port: number;
  username: string;
  /** Unencrypted private key, OpenSSH or PEM format. */
  privateKey: string | Buffer;
  /** Pinned host key in OpenSSH public-key format: `ssh-ed25519 AAAA... [comment]`. */
  hostKey: string;
  /** Time allowed for one connection attempt (TCP + handshake + auth). Default 10 s. */
  readyTimeoutMs?: number;
  /** SSH keepalive interval. Default 5 s. */
  keepaliveIntervalMs?: number;
  /** Unanswered keepalives before the connection is considered dead. Default 3. */
  keepaliveCountMax?: number;
  /** First reconnect delay; doubles per failed attempt up to maxBackoffMs. Default 250 ms. */
  minBackoffMs?: number;
  /** Default 10 s. */
  maxBackoffMs?: number;
  /** Called whenever the connection comes up or goes down (with the cause). */
  onStateChange?: (state: { connected: boolean; error?: Error }) => void;
}

/** The server presented a host key other than the pinned one. */
export class HostKeyMismatchError extends Error {
  override readonly name = 'HostKeyMismatchError';
  constructor(
    readonly target: string,
    readonly expectedFingerprint: string,
    readonly actualFingerprint: string,
  ) {
    super(`host key mismatch for ${target}: expected ${expectedFingerprint}, got ${actualFingerprint}`);
  }
}

/** The tunnel is not connected (or closed) when a stream was requested. */
export class TunnelDownError extends Error {
  override readonly name = 'TunnelDownError';
}

interface PinnedKey {
  type: string;
  blob: Buffer;
}

/** Host key algorithms ssh2 may negotiate for a pinned key of each type. */
const HOST_KEY_ALGORITHMS: Record<string, ServerHostKeyAlgorithm[]> = {
  'ssh-ed25519': ['ssh-ed25519'],
  'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'],
  'ecdsa-sha2-nistp256': ['ecdsa-sha2-nistp256'],
  'ecdsa-sha2-nistp384': ['ecdsa-sha2-nistp384'],
  'ecdsa-sha2-nistp521': ['ecdsa-sha2-nistp521'],
};

/** ssh2 options that accept only the pinned host key; another key is handed to `onMismatch` and refused. */
export function pinnedHostKey(pinned: PinnedKey, target: string, onMismatch: (err: HostKeyMismatchError) => void): Pick<ConnectConfig, 'algorithms' | 'hostVerifier'> {
  return {
    // Ask for the pinned key's type, so a server with several host keys presents that one.
    algorithms: { serverHostKey: HOST_KEY_ALGORITHMS[pinned.type] },
    hostVerifier: (key: Buffer) => {
      if (key.equals(pinned.blob)) return true;
      onMismatch(new HostKeyMismatchError(target, fingerprint(pinned.blob), fingerprint(key)));
      return false;
    },
  };
}

/** Parses `type base64 [comment]`; throws a clear error for anything else. */
export function parseHostKey(line: string): PinnedKey {
  const [type, data] = line.trim().split(/\s+/);
  if (!type || !data) throw new Error(`invalid host key "${line}": expected "<type> <base64 key> [comment]"`);
  if (!HOST_KEY_ALGORITHMS[type]) {
    throw new Error(`unsupported host key type ${type}: use one of ${Object.keys(HOST_KEY_ALGORITHMS).join(', ')}`);
  }
  const blob = Buffer.from(data, 'base64');
  // The blob starts with the length-prefixed key type; a mismatch means a damaged or mislabelled key.
  const innerLength = blob.length >= 4 ? blob.readUInt32BE(0) : -1;
  if (innerLength < 0 || blob.subarray(4, 4 + innerLength).toString('latin1') !== type) {
    throw new Error(`invalid host key: the base64 data is not a ${type} public key`);
  }
  return { type, blob };
}

/** OpenSSH-style fingerprint of a public key blob: `SHA256:<unpadded base64>`. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** Node's http client calls these socket methods; an SSH channel has no such settings. */
function asSocketLike(channel: ClientChannel): Duplex {
  const stream = channel as ClientChannel & Record<string, unknown>;
  for (const method of ['setKeepAlive', 'setNoDelay', 'setTimeout', 'ref', 'unref']) {
    if (typeof stream[method] !== 'function') stream[method] = () => stream;
  }
  return stream;
}

export class SshTunnel {
  readonly target: string;
  private readonly pinned: PinnedKey;
  private client: Client | undefined;
  private attempt: Promise<Client> | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private nextAttemptAt = 0;
  private failures = 0;
  private closed = false;
  private lastError: Error | undefined;

  private constructor(private readonly options: SshTunnelOptions) {
    this.target = `${options.host}:${options.port}`;
    this.pinned = parseHostKey(options.hostKey);
  }

  /** Connects; rejects (with HostKeyMismatchError for a wrong host key) if the first attempt fails. */
  static async open(options: SshTunnelOptions): Promise<SshTunnel> {
    const tunnel = new SshTunnel(options);
    tunnel.attempt = tunnel.connectOnce();
    try {
      tunnel.client = await tunnel.attempt;
    } catch (err) {
      if (err instanceof HostKeyMismatchError) throw err;
      throw new Error(`SSH connection to ${options.username}@${tunnel.target} failed: ${(err as Error).message}`, { cause: err });
    } finally {
      tunnel.attempt = undefined;
    }
    return tunnel;
  }

  get connected(): boolean {
    return this.client !== undefined;
  }

  /** Opens a stream to a Unix socket on the remote host (like `ssh -L` to a socket). */
  openStreamLocal(socketPath: string): Promise<Duplex> {
    return this.openChannel(socketPath, (client, done) => client.openssh_forwardOutStreamLocal(socketPath, done));
  }

  /** Opens a TCP connection made by the remote host to `host:port` (like `ssh -L` to a port), e.g. to a loopback-only admin API there. */
  openTcp(host: string, port: number): Promise<Duplex> {
    return this.openChannel(`${host}:${port}`, (client, done) => client.forwardOut('127.0.0.1', 0, host, port, done));
  }

  private async openChannel(what: string, open: (client: Client, done: (err: Error | undefined, channel: ClientChannel) => void) => void): Promise<Duplex> {
    if (this.closed) throw new TunnelDownError(`SSH tunnel to ${this.target} is closed`);
    // A reconnect in progress is worth waiting for: it either succeeds or fails within readyTimeout.
    const client = this.client ?? (await this.attempt?.catch(() => undefined));
    if (!client) throw this.downError();
    return new Promise((resolve, reject) => {
      try {
        open(client, (err, channel) => {
          if (err) reject(new Error(`cannot open ${what} on ${this.target} over SSH: ${err.message}`));
          else resolve(asSocketLike(channel));
        });
      } catch (err) {
        // ssh2 throws synchronously when the connection went away in the meantime.
        reject(new TunnelDownError(`SSH connection to ${this.target} is down: ${(err as Error).message}`));
      }
    });
  }

  /** An http.Agent whose connections are streams to `socketPath` on the remote host. */
  createAgent(socketPath: string): Agent {
    return new StreamLocalAgent(this, socketPath);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    const client = this.client ?? (await this.attempt?.catch(() => undefined));
    this.client = undefined;
    if (!client) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        client.destroy();
        resolve();
      }, 2000);
      client.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      client.end();
    });
  }

  private downError(): TunnelDownError {
    const retryIn = Math.max(0, this.nextAttemptAt - Date.now());
    const cause = this.lastError ? `: ${this.lastError.message}` : '';
    return new TunnelDownError(
      `SSH connection to ${this.target} is down (next reconnect attempt in ${Math.ceil(retryIn / 1000)} s)${cause}`,
    );
  }

  private connectOnce(): Promise<Client> {
    const { options } = this;
    const client = new Client();
    let mismatch: HostKeyMismatchError | undefined;
    const config: ConnectConfig = {
      host: options.host,
      port: options.port,
      username: options.username,
      privateKey: options.privateKey,
      readyTimeout: options.readyTimeoutMs ?? 10_000,
      keepaliveInterval: options.keepaliveIntervalMs ?? 5000,
      keepaliveCountMax: options.keepaliveCountMax ?? 3,
      ...pinnedHostKey(this.pinned, this.target, (err) => (mismatch = err)),
    };
    return new Promise<Client>((resolve, reject) => {
      let ready = false;
      let error: Error | undefined;
      client.on('error', (err: Error) => {
        error = mismatch ?? err;
      });
      client.once('ready', () => {
        ready = true;
        this.failures = 0;
        this.lastError = undefined;
        this.options.onStateChange?.({ connected: true });
        resolve(client);
      });
      client.once('close', () => {
        if (!ready) {
          reject(error ?? new Error(`SSH connection to ${this.target} closed during the handshake`));
          return;
        }
        this.onDisconnected(client, error ?? new Error(`SSH connection to ${this.target} closed`));
      });
      try {
        client.connect(config);
        // Small request/response exchanges: without this Nagle + delayed ACKs add ~40 ms stalls.
        client.setNoDelay(true);
      } catch (err) {
        reject(err as Error);
      }
    });
  }

  private onDisconnected(client: Client, error: Error): void {
    if (this.client !== client) return;
    this.client = undefined;
    this.lastError = error;
    if (this.closed) return;
    this.options.onStateChange?.({ connected: false, error });
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed) return;
    const min = this.options.minBackoffMs ?? 250;
    const max = this.options.maxBackoffMs ?? 10_000;
    const delay = Math.min(max, min * 2 ** this.failures);
    this.nextAttemptAt = Date.now() + delay;
    this.reconnectTimer = setTimeout(() => {
      const attempt = this.connectOnce();
      this.attempt = attempt;
      attempt.then(
        (client) => {
          this.attempt = undefined;
          if (this.closed) client.end();
          else this.client = client;
        },
        (err: Error) => {
          this.attempt = undefined;
          this.failures += 1;
          this.lastError = err;
          this.scheduleReconnect();
        },
      );
    }, delay);
  }
}

/** http.Agent that connects each request through the tunnel to a remote Unix socket. */
class StreamLocalAgent extends Agent {
  constructor(
    private readonly tunnel: SshTunnel,
    private readonly socketPath: string,
  ) {
    super({ keepAlive: false });
  }

  /**
   * docker-modem runs util.inspect(requestOptions, {depth: null}) on every request, whatever the
   * log level; without this it would walk the whole SSH connection and all open channels
   * (hundreds of ms per request with a few event or log streams open).
   */
  [inspect.custom](): string {
    return `StreamLocalAgent(${this.tunnel.target}:${this.socketPath})`;
  }

  override createConnection(
    _options: ClientRequestArgs,
    callback?: (err: Error | null, stream: Duplex) => void,
  ): Duplex | null | undefined {
    this.tunnel.openStreamLocal(this.socketPath).then(
      (stream) => callback?.(null, stream),
      (err: Error) => callback?.(err, undefined as unknown as Duplex),
    );
    return undefined;
  }
}
