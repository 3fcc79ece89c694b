#!/usr/bin/env bash
# A throwaway MongoDB replica set (one member) for tests, from the mongod
# and mongosh (or legacy mongo shell) found on PATH. Debian ships neither:
# where no mongod is on PATH this says so and exits 77, which ctest
# reports as "Skipped" (never as passed).
#
#   tests/mongo.sh start              starts one; prints its URL
#                                     (mongodb://127.0.0.1:N/?replicaSet=rs0)
#   tests/mongo.sh stop URL|DIR       stops it and removes its directory
#   tests/mongo.sh run CMD [ARG...]   start, run CMD with
#                                     KONTENA_TEST_MONGODB_URI set, stop;
#                                     exits with CMD's status
#   tests/mongo.sh run-tests BIN...   the same for several test binaries,
#                                     each run even when one fails
#
# The server lives in a private /tmp/kontena-mongo.XXXXXX directory: data,
# unix socket, log, pid file. It listens on 127.0.0.1 at a free port with
# no authentication, as replica set "rs0" (transactions and change streams
# need one), with compression off so that tests can search its files for
# plaintext: for tests only. MONGOD and MONGO_SHELL override the programs.
# SPDX-License-Identifier: Apache-2.0
set -euo pipefail

SKIP=77
RS=rs0

find_mongod() {
  if [ -n "${MONGOD:-}" ]; then
    echo "$MONGOD"
    return
  fi
  if ! command -v mongod 2>/dev/null; then
    echo "SKIPPED: no mongod on PATH: the MongoDB store suite did not run" >&2
    exit $SKIP
  fi
}

find_shell() {
  if [ -n "${MONGO_SHELL:-}" ]; then
    echo "$MONGO_SHELL"
    return
  fi
  if ! command -v mongosh 2>/dev/null && ! command -v mongo 2>/dev/null; then
    echo "SKIPPED: mongod is on PATH but neither mongosh nor mongo is" \
      "(needed to initiate the replica set): the MongoDB store suite did" \
      "not run" >&2
    exit $SKIP
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Runs a JavaScript expression on the server at port; prints its value
# (mongosh and the legacy shell both print the value of --eval), with
# the shell's own messages.
shell_eval() { # shell port js
  "$1" --quiet --norc --host 127.0.0.1 --port "$2" --eval "$3" 2>&1
}

# Whether shell_eval's output (in $1) has the line $2: the value, wherever
# a shell warning may have put it.
printed() { # output value
  printf '%s\n' "$1" | grep -qx "$2"
}

# Kills the mongod whose pid file is in dir (a process this script
# started), waiting for it to go.
kill_server() { # dir
  local pid
  [ -f "$1/mongod.pid" ] || return 0
  pid=$(cat "$1/mongod.pid")
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || return 0 # SIGTERM: a clean shutdown
  for _ in $(seq 150); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do # gone before its directory is removed
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
}

start() {
  local mongod shell dir port url out
  mongod=$(find_mongod)
  shell=$(find_shell)
  dir=$(mktemp -d /tmp/kontena-mongo.XXXXXX) || exit 1
  # Interrupted half way: no server or directory is left behind.
  trap 'kill_server "$dir"; rm -rf "$dir"; exit 130' INT TERM HUP
  mkdir "$dir/data" || { rm -rf "$dir"; exit 1; }
  for attempt in 1 2 3; do
    port=$(free_port)
    if "$mongod" --replSet "$RS" --bind_ip 127.0.0.1 --port "$port" \
      --dbpath "$dir/data" --unixSocketPrefix "$dir" \
      --logpath "$dir/mongod.log" --pidfilepath "$dir/mongod.pid" --fork \
      --oplogSize 64 --wiredTigerCacheSizeGB 0.25 \
      --wiredTigerCollectionBlockCompressor none \
      --wiredTigerJournalCompressor none \
      >"$dir/fork.log" 2>&1; then
      break
    fi
    kill_server "$dir"
    if [ "$attempt" = 3 ]; then
      echo "mongo.sh: mongod did not start:" >&2
      cat "$dir/fork.log" >&2 || true
      tail -n 30 "$dir/mongod.log" >&2 || true
      rm -rf "$dir"
      exit 1
    fi
    rm -rf "$dir/data" && mkdir "$dir/data"
  done
  # One member, named by the address clients use (not the host name,
  # which may not resolve).
  if ! out=$(shell_eval "$shell" "$port" \
    "rs.initiate({_id: '$RS', members: [{_id: 0, host: '127.0.0.1:$port'}]}).ok") ||
    ! printed "$out" 1; then
    echo "mongo.sh: rs.initiate failed: $out" >&2
    tail -n 30 "$dir/mongod.log" >&2 || true
    kill_server "$dir"
    rm -rf "$dir"
    exit 1
  fi
  # Until it is PRIMARY, for 60 s by the clock (a shell takes a second to
  # start, so the waiting is done inside it). The isMaster command, not
  # hello: 4.4.0 and 4.4.1 have no hello, and 8.0 still answers isMaster.
  local deadline=$((SECONDS + 60))
  while [ "$SECONDS" -lt "$deadline" ]; do
    out=$(shell_eval "$shell" "$port" "
      var until = Date.now() + 10000;
      while (!db.adminCommand({isMaster: 1}).ismaster && Date.now() < until)
        sleep(100);
      db.adminCommand({isMaster: 1}).ismaster" || true)
    if printed "$out" true; then
      url="mongodb://127.0.0.1:$port/?replicaSet=$RS"
      echo "$url" >"$dir/url"
      trap - INT TERM HUP
      echo "$url"
      return
    fi
    sleep 0.2
  done
  echo "mongo.sh: the replica set has no primary after 60 s: $out" >&2
  tail -n 30 "$dir/mongod.log" >&2 || true
  kill_server "$dir"
  rm -rf "$dir"
  exit 1
}

stop() { # url or directory
  local dir=$1 f
  case "$1" in
  mongodb://*)
    dir=
    for f in /tmp/kontena-mongo.*/url; do
      [ -f "$f" ] || continue
      if [ "$(cat "$f")" = "$1" ]; then
        dir=$(dirname "$f")
        break
      fi
    done
    [ -n "$dir" ] || return 0
    ;;
  esac
  case "$dir" in
  /tmp/kontena-mongo.*) ;;
  *)
    echo "mongo.sh: not a mongo.sh server: $1" >&2
    exit 1
    ;;
  esac
  [ -d "$dir" ] || return 0
  kill_server "$dir"
  rm -rf "$dir"
}

case "${1:-}" in
start)
  start
  ;;
stop)
  [ $# -eq 2 ] || { echo "usage: mongo.sh stop URL|DIR" >&2; exit 2; }
  stop "$2"
  ;;
run | run-tests)
  mode=$1
  shift
  [ $# -ge 1 ] || { echo "usage: mongo.sh $mode CMD..." >&2; exit 2; }
  find_mongod >/dev/null # exits 77 with the reason when there is none
  find_shell >/dev/null
  url=$(start)
  trap 'stop "$url"' EXIT
  trap 'exit 130' INT TERM
  unset KONTENA_TEST_DATABASE_URL
  export KONTENA_TEST_MONGODB_URI="$url"
  echo "mongo.sh: MongoDB at $url" >&2
  status=0
  if [ "$mode" = run ]; then
    "$@" || status=$?
  else
    for t in "$@"; do
      echo "mongo.sh: running $t against MongoDB" >&2
      "$t" || status=1
    done
  fi
  exit $status
  ;;
*)
  sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
  ;;
esac
