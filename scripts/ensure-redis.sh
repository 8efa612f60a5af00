#!/usr/bin/env bash
# Make sure a Redis answers on 127.0.0.1:${REDIS_PORT:-6379}: use the running one, else
# start an installed redis-server, else install it from Debian's packages first.
set -euo pipefail
port="${REDIS_PORT:-6379}"
ping() { (exec 3<>/dev/tcp/127.0.0.1/"$port" && printf 'PING\r\n' >&3 && head -c 5 <&3 | grep -q PONG) 2>/dev/null; }
if ping; then exit 0; fi
if ! command -v redis-server >/dev/null 2>&1; then
  echo "redis: not installed; installing Debian's redis-server" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq redis-server >/dev/null
fi
mkdir -p /tmp/docmill-redis
redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
  --dir /tmp/docmill-redis --logfile /tmp/docmill-redis/redis.log
for _ in $(seq 50); do ping && exit 0; sleep 0.1; done
echo "redis: could not start on 127.0.0.1:$port (see /tmp/docmill-redis/redis.log)" >&2
exit 1
