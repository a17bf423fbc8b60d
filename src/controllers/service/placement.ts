// Placement, the only scheduling logic: spread replicas over nodes that match the node selector,
// are Ready and schedulable, and have room for the requested resources, fewest replicas first.
// Pure, so it is tested by comparing outputs.

export interface NodeCandidate {
  name: string;
  labels: Readonly<Record<string, string>>;
  ready: boolean;
  unschedulable: boolean;
  /** Allocatable capacity; undefined means not limited. */
  cpus?: number;
  memoryBytes?: number;
  /** Already allocated to Slipway containers. */
  allocatedCpus: number;
  allocatedMemoryBytes: number;
  /** Replicas of the service being placed already on this node. */
  replicasOfService: number;
}

export interface Request {
  cpus: number;
  memoryBytes: number;
}

export function matchesSelector(labels: Readonly<Record<string, string>>, selector: Readonly<Record<string, string>> | undefined): boolean {
  if (!selector) return true;
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/** Nodes that may take a new replica, with the reason each other node was skipped. */
export function eligibleNodes(nodes: readonly NodeCandidate[], selector: Readonly<Record<string, string>> | undefined, request: Request) {
  const eligible: NodeCandidate[] = [];
  const skipped: string[] = [];
  for (const node of nodes) {
    if (!matchesSelector(node.labels, selector)) skipped.push(`${node.name}: labels do not match nodeSelector`);
    else if (!node.ready) skipped.push(`${node.name}: not Ready`);
    else if (node.unschedulable) skipped.push(`${node.name}: unschedulable (cordoned)`);
    else if (!fits(node, request)) skipped.push(`${node.name}: not enough free CPU or memory`);
    else eligible.push(node);
  }
  return { eligible, skipped };
}

function fits(node: NodeCandidate, request: Request): boolean {
  if (node.cpus !== undefined && request.cpus > 0 && node.allocatedCpus + request.cpus > node.cpus + 1e-9) return false;
  if (node.memoryBytes !== undefined && request.memoryBytes > 0 && node.allocatedMemoryBytes + request.memoryBytes > node.memoryBytes) return false;
  return true;
}

/**
 * Chooses a node for each of `count` new replicas, one at a time on the node with the fewest
 * replicas of the service (ties: least allocated memory, then name). Returns fewer than `count`
 * names when capacity runs out.
 */
export function placeReplicas(nodes: readonly NodeCandidate[], selector: Readonly<Record<string, string>> | undefined, request: Request, count: number): string[] {
  const state = nodes.map((n) => ({ ...n }));
  const chosen: string[] = [];
  for (let i = 0; i < count; i++) {
    const { eligible } = eligibleNodes(state, selector, request);
    if (!eligible.length) break;
    eligible.sort((a, b) => a.replicasOfService - b.replicasOfService || a.allocatedMemoryBytes - b.allocatedMemoryBytes || (a.name < b.name ? -1 : 1));
    const pick = eligible[0]!;
    pick.replicasOfService++;
    pick.allocatedCpus += request.cpus;
    pick.allocatedMemoryBytes += request.memoryBytes;
    chosen.push(pick.name);
  }
  return chosen;
}
