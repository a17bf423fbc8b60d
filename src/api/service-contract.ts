// Names shared by the Service controller, slipctl and tests: the Service fields a Release snapshots
// (its template) and the annotations that steer rollouts, drains and Domain checks.

/** Service spec fields copied into each Release; changing any of them makes a new Release. */
export const TEMPLATE_FIELDS = [
  'image',
  'imagePullSecretRef',
  'command',
  'args',
  'env',
  'envFrom',
  'port',
  'nodeSelector',
  'healthCheck',
  'migrate',
  'resources',
  'security',
  'volumes',
  'terminationGracePeriodSeconds',
  'build',
] as const;

/** On a Service: changing it (`slipctl rollout restart`) rolls out the same template again. */
export const RESTARTED_AT_ANNOTATION = 'slipway.dev/restartedAt';
/** On a Service: why the next Release is made; copied into Release.spec.cause. */
export const CHANGE_CAUSE_ANNOTATION = 'slipway.dev/change-cause';
/** On a Node: time of a drain request; its replicas move to other nodes. */
export const DRAIN_ANNOTATION = 'slipway.dev/drain';
/** On a Domain: time of a `slipctl domain verify`; DNS is checked at once, past the backoff. */
export const VERIFY_REQUESTED_AT_ANNOTATION = 'slipway.dev/verify-requested-at';
