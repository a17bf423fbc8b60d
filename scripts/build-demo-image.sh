#!/usr/bin/env bash
# Builds the example app image slipway/hello:1 locally (no registry is needed): FROM scratch with
# this machine's node binary, the shared libraries it needs, and examples/hello. Skipped when an
# image of the same content is already present.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
TAG=slipway/hello:1
NODE_BIN=$(command -v node)
version=$(cat "$NODE_BIN" "$ROOT"/examples/hello/* | sha256sum | cut -c1-16)
if [ "$(docker image inspect "$TAG" --format '{{index .Config.Labels "slipway.dev/content"}}' 2>/dev/null)" = "$version" ]; then
  echo "image $TAG is up to date"
  exit 0
fi
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/rootfs/usr/local/bin" "$ctx/rootfs/app" "$ctx/rootfs/tmp"
cp "$NODE_BIN" "$ctx/rootfs/usr/local/bin/node"
# The loader and every library node links against, at the same paths.
for lib in $(ldd "$NODE_BIN" | grep -o '/[^ ]*'); do
  mkdir -p "$ctx/rootfs$(dirname "$lib")"
  cp -L "$lib" "$ctx/rootfs$lib"
done
cp "$ROOT"/examples/hello/* "$ctx/rootfs/app/"
chmod 1777 "$ctx/rootfs/tmp"
cat > "$ctx/Dockerfile" <<DOCKERFILE
FROM scratch
COPY rootfs/ /
WORKDIR /app
USER 65534:65534
ENV PATH=/usr/local/bin PORT=3000
LABEL slipway.dev/content="$version"
EXPOSE 3000
ENTRYPOINT ["/usr/local/bin/node"]
CMD ["server.js"]
DOCKERFILE
docker build -q -t "$TAG" "$ctx" >/dev/null 2>"$ctx/build.log" || { cat "$ctx/build.log" >&2; exit 1; }
echo "built image $TAG"
