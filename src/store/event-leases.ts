// Shares etcd leases between keys that expire at about the same time (Events), so a burst
// of a thousand Events costs one lease grant instead of a thousand (kube-apiserver's lease manager).

/** How long one granted lease is reused for new keys. */
const REUSE_WINDOW_SECONDS = 60;

export class EventLeases {
  private current: { id: string; ttl: number; grantedAt: number } | null = null;
  private pending: Promise<string> | null = null;

  constructor(private readonly grant: (ttlSeconds: number) => Promise<string>) {}

  /** A lease that lives at least `ttlSeconds` from now (and at most `REUSE_WINDOW_SECONDS` longer). */
  async leaseFor(ttlSeconds: number): Promise<string> {
    const now = Date.now() / 1000;
    const c = this.current;
    if (c && c.ttl === ttlSeconds + REUSE_WINDOW_SECONDS && now - c.grantedAt < REUSE_WINDOW_SECONDS) return c.id;
    if (this.pending) return this.pending;
    const ttl = ttlSeconds + REUSE_WINDOW_SECONDS;
    this.pending = this.grant(ttl)
      .then((id) => {
        this.current = { id, ttl, grantedAt: Date.now() / 1000 };
        return id;
      })
      .finally(() => {
        this.pending = null;
      });
    return this.pending;
  }
}
