// Role-based access control rules, pure: the built-in ClusterRoles and whether a set of rules allows
// a request. Roles are additive (no deny rules), as in Kubernetes.

export interface Rule {
  resources: readonly string[];
  verbs: readonly string[];
  resourceNames?: readonly string[];
}

export interface Attributes {
  verb: string;
  /** Plural, with `/subresource` for subresources (`services/status`, `services/log`). */
  resource: string;
  namespace?: string;
  name?: string;
}

const READ = ['get', 'list', 'watch'];
const WRITE = ['create', 'update', 'patch', 'delete', 'deletecollection'];

/** Kinds the deployer and viewer may read in full: everything but Secrets (values), RBAC and audit. */
const READABLE = ['namespaces', 'nodes', 'services', 'services/status', 'releases', 'releases/status', 'domains', 'domains/status', 'backuppolicies', 'backuppolicies/status', 'backuplocations', 'backups', 'backups/status', 'restores', 'restores/status', 'events', 'leases', 'customresourcedefinitions', 'alertrules', 'alerts', 'webhooks'];

export const BUILTIN_CLUSTER_ROLES: Record<string, Rule[]> = {
  admin: [{ resources: ['*'], verbs: ['*'] }],
  deployer: [
    { resources: READABLE, verbs: READ },
    // Secrets: names, keys and sizes (values are redacted without `get`).
    { resources: ['secrets'], verbs: ['list'] },
    { resources: ['services', 'domains'], verbs: WRITE },
    // Backups: run one now (`slipctl backup run`) and restore into a new target (`slipctl backup restore`).
    { resources: ['backups', 'restores'], verbs: ['create'] },
    { resources: ['services/log', 'releases/log'], verbs: ['get'] },
  ],
  viewer: [
    { resources: READABLE, verbs: READ },
    { resources: ['secrets'], verbs: ['list'] },
  ],
  'controller-manager': [
    { resources: ['*'], verbs: READ },
    { resources: ['releases', 'events', 'leases', 'alerts', 'alertrules', 'backups'], verbs: WRITE },
    // The domain controller's finalizer (metadata only; the spec stays the user's).
    { resources: ['domains'], verbs: ['update', 'patch'] },
    { resources: ['services/status', 'releases/status', 'nodes/status', 'domains/status', 'backuppolicies/status', 'backups/status', 'restores/status', 'alerts/status', 'alertrules/status', 'webhooks/status'], verbs: ['get', 'update', 'patch'] },
  ],
};

function matches(values: readonly string[], value: string): boolean {
  return values.includes('*') || values.includes(value);
}

export function ruleAllows(rule: Rule, attrs: Attributes): boolean {
  if (!matches(rule.verbs, attrs.verb)) return false;
  if (!matches(rule.resources, attrs.resource)) return false;
  if (rule.resourceNames?.length) return attrs.name !== undefined && rule.resourceNames.includes(attrs.name);
  return true;
}

export const rulesAllow = (rules: readonly Rule[], attrs: Attributes) => rules.some((r) => ruleAllows(r, attrs));
