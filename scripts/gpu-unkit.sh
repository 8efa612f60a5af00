#!/usr/bin/env bash
# On the GPU machine: unpacks the parts scripts/gpu-kit.sh made (.gpukit/1 .. N, carried one
# per call) and prints the arguments that point `python3 -m bench.gpu` at them:
#
#   args=$(scripts/gpu-unkit.sh) && DOCMILL_CACHE_DIR=/tmp/docmill-gpukit/cache python3 -m bench.gpu $args
#
# Part 1 alone (the first call's probe) unpacks the wheels, redis-server and the images; the
# later parts add onnxruntime-gpu (into .gpu-deps/, which bench.gpu puts first on the path)
# and the model cache. Nothing is unpacked into /.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${DEST:-/tmp/docmill-gpukit}
mkdir -p "$DEST/kit" "$DEST/redis" .gpu-deps

tar -C "$DEST/kit" -xf .gpukit/1/kit.tar
for deb in "$DEST"/kit/debs/*.deb; do dpkg -x "$deb" "$DEST/redis"; done
cat >"$DEST/redis-server" <<EOF
#!/bin/bash
# Debian's redis-server is redis-check-rdb under another name: the name picks the mode.
LD_LIBRARY_PATH="$DEST/redis/usr/lib/x86_64-linux-gnu\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec -a redis-server "$DEST/redis/usr/bin/redis-check-rdb" "\$@"
EOF
chmod +x "$DEST/redis-server"
[ -e ../shared/data ] || { mkdir -p ../shared && cp -r "$DEST/kit/shared/data" ../shared/; }

if ls .gpukit/2/part.* >/dev/null 2>&1; then
  cat .gpukit/*/part.* | xz -dc -T0 | tar -C "$DEST" -xf -
  cp -r "$DEST"/ort/* .gpu-deps/
fi
echo "--wheels $DEST/kit/wheels --redis-server $DEST/redis-server"
