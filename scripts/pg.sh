#!/usr/bin/env bash
# A throwaway PostgreSQL server for the store tests: a fresh cluster in DIR, run by an
# unprivileged user (postgres refuses root), listening on 127.0.0.1 on a free port, trust auth.
#
#   eval "$(bash scripts/pg.sh start DIR)"   # exports PORTOLAN_TEST_POSTGRES=postgres://…
#   bash scripts/pg.sh stop DIR
#
# start removes a leftover server in DIR (from a crashed run) first. Bounded: waits at most
# 30 s for the server to accept connections.
set -euo pipefail

cmd="${1:-}"
dir="${2:-/tmp/portolan-pg}"

bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
  if [ -z "$d" ] || [ ! -x "$d/initdb" ]; then
    echo "pg.sh: PostgreSQL server binaries not found (install the postgresql package)" >&2
    exit 1
  fi
  echo "$d"
}

# Runs a command as the cluster's owner: the postgres user when we are root, else ourselves.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
  else
    "$@"
  fi
}

stop() {
  local bin
  bin=$(bindir)
  if [ -f "$dir/data/postmaster.pid" ]; then
    as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w -t 20 stop >/dev/null 2>&1 || true
    # if pg_ctl could not, stop it by the pid it recorded
    local pid
    pid=$(head -n1 "$dir/data/postmaster.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill -9 "$pid" 2>/dev/null || true
    fi
  fi
  rm -rf "$dir"
}

case "$cmd" in
  start)
    bin=$(bindir)
    stop
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_owner "$bin/initdb" -D "$dir/data" -U portolan --auth=trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
      start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    echo "export PORTOLAN_TEST_POSTGRES=postgres://portolan@127.0.0.1:$port/postgres"
    # the same server by its Unix socket (a path: reachable from every network namespace)
    sock=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$dir")
    echo "export PORTOLAN_TEST_POSTGRES_SOCKET=postgres://portolan@$sock:$port/postgres"
    ;;
  stop)
    stop
    ;;
  *)
    echo "usage: pg.sh start|stop [DIR]" >&2
    exit 2
    ;;
esac
