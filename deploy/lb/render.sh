#!/bin/sh
# Renders deploy/lb/haproxy.cfg.in (the haproxy config every ssehub load
# balancer uses: scripts/run.sh, the docker-compose lb service, the tests)
# to standard output. POSIX sh, sed and awk only, so it runs in the lb image.
#
# usage: render.sh [options] LB_PORT NAME=HOST:PORT...
#   LB_PORT              the port clients connect to (@LB_PORT@)
#   NAME=HOST:PORT       one backend server per node (@SERVERS@ becomes
#                        "  server NAME HOST:PORT check" lines)
# options:
#   --template FILE      the template (default: haproxy.cfg.in beside this script)
#   --bind-addr ADDR     listen on ADDR only (the template binds every
#                        address: "bind *:PORT"); scripts/run.sh uses 127.0.0.1
#   --stats-socket PATH  add an admin stats socket to the global section
#                        (echo 'show stat' | socat - PATH, or nc -U)
#   --resolver HOST:PORT re-resolve server host names through this DNS server
#                        (docker-compose: Docker's 127.0.0.11:53), so a node
#                        container that comes back with a new address is
#                        found again; servers whose names do not resolve at
#                        start-up start down instead of failing the config
set -eu

here=$(cd "$(dirname "$0")" && pwd)
template=$here/haproxy.cfg.in
bind_addr=
stats_socket=
resolver=

usage() {
  sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}

while [ $# -gt 0 ]; do
  case $1 in
    --template) template=$2; shift 2 ;;
    --bind-addr) bind_addr=$2; shift 2 ;;
    --stats-socket) stats_socket=$2; shift 2 ;;
    --resolver) resolver=$2; shift 2 ;;
    -h | --help) usage ;;
    --) shift; break ;;
    -*) echo "render.sh: unknown option $1" >&2; usage ;;
    *) break ;;
  esac
done
[ $# -ge 2 ] || usage
lb_port=$1
shift
case $lb_port in
  '' | *[!0-9]*) echo "render.sh: bad LB_PORT '$lb_port'" >&2; exit 2 ;;
esac
[ -r "$template" ] || { echo "render.sh: cannot read $template" >&2; exit 1; }

server_opts=check
[ -z "$resolver" ] || server_opts="check resolvers ssehub_dns init-addr libc,none"

servers=
for s in "$@"; do
  name=${s%%=*}
  addr=${s#*=}
  case $s in
    *=*:*) ;;
    *) echo "render.sh: server '$s' is not NAME=HOST:PORT" >&2; exit 2 ;;
  esac
  servers="$servers  server $name $addr $server_opts
"
done

out=$(mktemp)
trap 'rm -f "$out"' EXIT

# The substitutions. @SERVERS@ stands on a line of its own.
awk -v port="$lb_port" -v servers="$servers" -v bind_addr="$bind_addr" -v stats="$stats_socket" '
  /^[ \t]*@SERVERS@[ \t]*$/ { printf "%s", servers; next }
  {
    gsub(/@LB_PORT@/, port)
    if (bind_addr != "" && $0 ~ /^[ \t]*bind[ \t]+\*:/) sub(/\*:/, bind_addr ":")
    print
    if (stats != "" && $0 ~ /^global[ \t]*$/) print "  stats socket " stats " mode 600 level admin"
  }
' "$template" >"$out"

if grep -q '@[A-Z_]*@' "$out"; then
  echo "render.sh: $template has a placeholder this script does not know: $(grep -o '@[A-Z_]*@' "$out" | head -n 1)" >&2
  exit 1
fi
if [ -n "$bind_addr" ] && ! grep -Eq "^[[:space:]]*bind[[:space:]]+$bind_addr:$lb_port([[:space:]]|\$)" "$out"; then
  echo "render.sh: the template has no 'bind *:@LB_PORT@' line to restrict to $bind_addr" >&2
  exit 1
fi

cat "$out"
if [ -n "$resolver" ]; then
  cat <<EOF

# Added by render.sh --resolver: server names are resolved again through
# this DNS server while haproxy runs.
resolvers ssehub_dns
  nameserver dns1 $resolver
  accepted_payload_size 8192
  hold valid 5s
  hold obsolete 30s
EOF
fi
