#!/usr/bin/env bash
# Finds or starts the PostgreSQL the tests use and prints `export CROWDGRID_TEST_PG=…` for scripts/test.sh.
#   1. $CROWDGRID_TEST_PG, if set and answering;
#   2. postgres://root@127.0.0.1:5432/test, if answering (this project's CI machines run one);
#   3. otherwise a private cluster of Debian's PostgreSQL on a free loopback port, data in .cache/pg/ (installed with
#      apt when absent, started here, reused by the next run), trust auth for a `root` role, database `test`.
# Nothing listens beyond 127.0.0.1; the system's own cluster (if any) is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_cmd=""
[ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"

answers() { psql "$1" -Atqc 'SELECT 1' >/dev/null 2>&1; }

if ! command -v psql >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ -n "${CROWDGRID_TEST_PG:-}" ] && command -v psql >/dev/null 2>&1 && answers "$CROWDGRID_TEST_PG"; then
    echo "export CROWDGRID_TEST_PG='$CROWDGRID_TEST_PG'"; exit 0
  fi
  echo "setup: installing PostgreSQL (Debian's postgresql) for the dispatch-store tests" >&2
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq >&2
  $sudo_cmd apt-get install -y -qq --no-install-recommends postgresql postgresql-client >/dev/null
  # Debian's package starts a system cluster on 5432; leave it as it is (it has no `root` role).
fi

if [ -n "${CROWDGRID_TEST_PG:-}" ] && answers "$CROWDGRID_TEST_PG"; then
  echo "export CROWDGRID_TEST_PG='$CROWDGRID_TEST_PG'"; exit 0
fi
default=postgres://root@127.0.0.1:5432/test
if [ -z "${CROWDGRID_TEST_PG_PRIVATE:-}" ] && answers "$default"; then
  echo "export CROWDGRID_TEST_PG='$default'"; exit 0
fi

bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
data=$(pwd)/.cache/pg/data
portfile=$(pwd)/.cache/pg/port
mkdir -p .cache/pg
# initdb and postgres refuse to run as root: the cluster belongs to the `postgres` user Debian's package made.
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
  as_pg=(runuser -u postgres --)
  chown postgres: .cache/pg
fi
if [ -f "$portfile" ]; then
  port=$(cat "$portfile")
  url="postgres://root@127.0.0.1:$port/test"
  if answers "$url"; then echo "export CROWDGRID_TEST_PG='$url'"; exit 0; fi
else
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  echo "$port" > "$portfile"
fi
if [ ! -f "$data/PG_VERSION" ]; then
  echo "setup: creating a private PostgreSQL cluster in .cache/pg (port $port)" >&2
  "${as_pg[@]}" "$bin/initdb" -D "$data" -U root --auth=trust -E UTF8 >/dev/null
fi
"${as_pg[@]}" "$bin/pg_ctl" -D "$data" -l "$(pwd)/.cache/pg/log" -w -t 30 \
  -o "-p $port -c listen_addresses=127.0.0.1 -k /tmp" start >&2
psql "postgres://root@127.0.0.1:$port/postgres" -Atqc "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1 ||
  psql "postgres://root@127.0.0.1:$port/postgres" -qc 'CREATE DATABASE test' >&2
echo "export CROWDGRID_TEST_PG='postgres://root@127.0.0.1:$port/test'"
