#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests, from Debian's server binaries
# (package postgresql; /usr/lib/postgresql/<version>/bin).
#
#   tests/pg.sh start              starts one; prints its URL (postgresql:///
#                                  postgres?host=<socket dir>&port=N&user=kontena)
#   tests/pg.sh stop URL           stops it and removes its directory
#   tests/pg.sh run CMD [ARG...]   start, run CMD with KONTENA_TEST_DATABASE_URL
#                                  set, stop; exits with CMD's status
#   tests/pg.sh run-tests BIN...   the same for several test binaries, each
#                                  run even when one fails
#
# The cluster lives in a private /tmp/kontena-pg.XXXXXX directory: data,
# unix socket, logs. It listens on the socket and on 127.0.0.1 at a free
# port, trusts every local connection (superuser "kontena"), and runs with
# fsync off: for tests only. initdb and postgres refuse to run as root, so
# as root they run as the "postgres" user (or "nobody").
# SPDX-License-Identifier: Apache-2.0
set -euo pipefail

pg_bin() {
  if [ -n "${PG_BIN:-}" ]; then
    echo "$PG_BIN"
    return
  fi
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  if [ -z "$d" ] || [ ! -x "$d/initdb" ]; then
    echo "pg.sh: no PostgreSQL server binaries in /usr/lib/postgresql/*/bin" \
      "(install the postgresql package: scripts/deps.sh --test)" >&2
    exit 1
  fi
  echo "$d"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# The command prefix that runs a program as the cluster's owner.
as_owner() { # dir
  if [ "$(id -u)" != 0 ]; then
    return
  fi
  local owner
  owner=$(stat -c %U "$1")
  echo "runuser -u $owner --"
}

start() {
  local bin dir owner as port url
  bin=$(pg_bin)
  dir=$(mktemp -d /tmp/kontena-pg.XXXXXX)
  chmod 755 "$dir"
  if [ "$(id -u)" = 0 ]; then
    owner=postgres
    getent passwd postgres >/dev/null || owner=nobody
    chown "$owner" "$dir"
  fi
  as=$(as_owner "$dir")
  if ! $as "$bin/initdb" -D "$dir/data" -U kontena -A trust --no-locale \
    -E UTF8 >"$dir/initdb.log" 2>&1; then
    echo "pg.sh: initdb failed:" >&2
    cat "$dir/initdb.log" >&2
    rm -rf "$dir"
    exit 1
  fi
  for attempt in 1 2 3; do
    port=$(free_port)
    if $as "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-k $dir -p $port -c listen_addresses=127.0.0.1 -c fsync=off \
-c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
      start >"$dir/pg_ctl.log" 2>&1; then
      url="postgresql:///postgres?host=$dir&port=$port&user=kontena"
      echo "$url" >"$dir/url"
      echo "$url"
      return
    fi
    if [ "$attempt" = 3 ]; then
      echo "pg.sh: the server did not start:" >&2
      cat "$dir/pg_ctl.log" "$dir/server.log" >&2 || true
      rm -rf "$dir"
      exit 1
    fi
  done
}

stop() { # url or directory
  local dir=$1 bin as
  case "$dir" in
  postgres*) dir=$(echo "$1" | sed -n 's/.*[?&]host=\([^&]*\).*/\1/p') ;;
  esac
  case "$dir" in
  /tmp/kontena-pg.*) ;;
  *)
    echo "pg.sh: not a pg.sh cluster: $1" >&2
    exit 1
    ;;
  esac
  [ -d "$dir" ] || return 0
  bin=$(pg_bin)
  as=$(as_owner "$dir")
  $as "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}

case "${1:-}" in
start)
  start
  ;;
stop)
  [ $# -eq 2 ] || { echo "usage: pg.sh stop URL" >&2; exit 2; }
  stop "$2"
  ;;
run | run-tests)
  mode=$1
  shift
  [ $# -ge 1 ] || { echo "usage: pg.sh $mode CMD..." >&2; exit 2; }
  url=$(start)
  trap 'stop "$url"' EXIT
  trap 'exit 130' INT TERM
  export KONTENA_TEST_DATABASE_URL="$url"
  echo "pg.sh: PostgreSQL at $url" >&2
  status=0
  if [ "$mode" = run ]; then
    "$@" || status=$?
  else
    for t in "$@"; do
      echo "pg.sh: running $t against PostgreSQL" >&2
      "$t" || status=1
    done
  fi
  exit $status
  ;;
*)
  sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
  ;;
esac
