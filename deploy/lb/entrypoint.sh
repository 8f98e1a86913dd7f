#!/bin/sh
# The docker-compose lb service (deploy/Dockerfile, target lb): renders
# haproxy.cfg.in for the nodes in LB_SERVERS ("NAME=HOST:PORT ...") on
# LB_PORT, resolving node names through Docker's DNS (LB_RESOLVER), and runs
# haproxy in the foreground (logs on stderr). Extra arguments go to haproxy.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cfg=${LB_CONFIG:-/run/haproxy-cfg/haproxy.cfg}
# shellcheck disable=SC2086 # LB_SERVERS is a list
sh "$here/render.sh" ${LB_RESOLVER:+--resolver "$LB_RESOLVER"} "${LB_PORT:-8080}" $LB_SERVERS >"$cfg"
haproxy -c -q -f "$cfg"
exec haproxy -db -f "$cfg" "$@"
