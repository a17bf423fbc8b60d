// Garbage collection of built images on a node. Every image this installation built carries the
// build-key and cluster labels; once no Release refers to it any more (its Releases were pruned by
// revisionHistoryLimit or deleted with their Service), its references are removed so the node's
// disk does not fill with old builds. Docker itself refuses to remove an image a container uses.
// Images of other installations, and images Slipway did not build, are never touched.

import type Docker from 'dockerode';
import type { Release } from '../api/generated/crd-types.js';
import type { DeepReadonly } from '../controllers/runtime/informer.js';
import { LABEL_CLUSTER as CLUSTER_LABEL } from '../controllers/service/container-spec.js';
import { BUILD_COMMIT_LABEL, BUILD_KEY_LABEL, FINISHED_BUILD_LABEL } from './build-identity.js';

/** What Releases still refer to: image IDs or registry digests, references, and built commits. */
export interface ImageReferences {
  digests: Set<string>;
  refs: Set<string>;
  commits: Set<string>;
}

export function releaseReferences(releases: ReadonlyArray<DeepReadonly<Release>>): ImageReferences {
  const refs: ImageReferences = { digests: new Set(), refs: new Set(), commits: new Set() };
  for (const r of releases) {
    if (r.spec?.imageDigest) refs.digests.add(r.spec.imageDigest);
    if (r.spec?.image) refs.refs.add(r.spec.image);
    // A Release still building (or about to reuse an image of its commit) has no digest yet.
    if (r.spec?.source?.commit) refs.commits.add(r.spec.source.commit);
  }
  return refs;
}

export interface UnusedImage {
  id: string;
  /** The references to remove: tags, then `repository@digest` names. */
  names: string[];
  size: number;
}

/**
 * The finished built images of `cluster` in `images` that no Release refers to and that are older
 * than `minAgeMs` (an image just built is not yet recorded in its Release). Layers of a build still
 * running are never among them (removing a finished image removes its untagged layers). Pure.
 */
export function unusedBuiltImages(images: ReadonlyArray<Docker.ImageInfo>, cluster: string, used: ImageReferences, nowMs: number, minAgeMs: number): UnusedImage[] {
  const unused: UnusedImage[] = [];
  for (const image of images) {
    const labels = image.Labels ?? {};
    if (!labels[BUILD_KEY_LABEL] || !labels[FINISHED_BUILD_LABEL] || labels[CLUSTER_LABEL] !== cluster) continue;
    if (nowMs - image.Created * 1000 < minAgeMs) continue;
    const tags = (image.RepoTags ?? []).filter((t) => t !== '<none>:<none>');
    const digests = (image.RepoDigests ?? []).filter((d) => !d.startsWith('<none>'));
    const referenced =
      used.digests.has(image.Id) ||
      used.commits.has(labels[BUILD_COMMIT_LABEL] ?? '') ||
      tags.some((t) => used.refs.has(t)) ||
      digests.some((d) => used.refs.has(d) || used.digests.has(d.slice(d.indexOf('@') + 1)));
    if (referenced) continue;
    unused.push({ id: image.Id, names: tags.length || digests.length ? [...tags, ...digests] : [image.Id], size: image.Size });
  }
  return unused;
}

export interface CollectResult {
  removed: UnusedImage[];
  /** Images Docker kept because a container still uses them. */
  inUse: number;
}

/** Removes the unused built images of `cluster` on one node (by reference, never forced). */
export async function collectBuiltImages(docker: Docker, cluster: string, used: ImageReferences, nowMs: number, minAgeMs: number): Promise<CollectResult> {
  const images = await docker.listImages({ filters: { label: [BUILD_KEY_LABEL, FINISHED_BUILD_LABEL, `${CLUSTER_LABEL}=${cluster}`] } } as Docker.ListImagesOptions);
  const result: CollectResult = { removed: [], inUse: 0 };
  for (const image of unusedBuiltImages(images, cluster, used, nowMs, minAgeMs)) {
    try {
      for (const name of image.names) await docker.getImage(name).remove();
      result.removed.push(image);
    } catch (err) {
      const code = (err as { statusCode?: number }).statusCode;
      if (code === 409) result.inUse++;
      else if (code !== 404) throw err;
    }
  }
  return result;
}
