#!/usr/bin/env bash
# The simulated city on three centre instances (issue 14; docs/DEPLOY.md): Changzhou's 62 sub-districts / 7,151
# grids / 20,000 zones from `crowdgrid sim-city`, shared by instances a, b and c through leases in PostgreSQL,
# behind one Mosquitto of our own (a free loopback port); `crowdgrid sim-load` plays a base-station estimate of
# every zone every 10 s plus CAMERAS cameras at 1 reading/s, signed, and times threshold crossings → the grid
# worker's notification on quiet zones in the first half. Halfway, instance b is killed with SIGKILL; later it is
# started again. Prints readings/s stored, crossing → notification percentiles, CPU (share of one core) and RSS
# per instance, the takeover time (b's sites leased by others; their readings stored again), the rejoin time, and
# what the broker acknowledged against what is stored. Asserts nothing.
#   bench/cluster.sh [SECONDS=60] [CAMERAS=2000] [BIN=target/release/crowdgrid]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
cams=${2:-2000}
bin=${3:-target/release/crowdgrid}
[ -x "$bin" ] || cargo build --release --locked --bin crowdgrid
mosq=$(command -v mosquitto || echo /usr/sbin/mosquitto)
[ -x "$mosq" ] || { echo "cluster: needs mosquitto (scripts/setup.sh --test installs it)" >&2; exit 1; }
eval "$(scripts/test-postgres.sh)"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
dir=$(mktemp -d)
schema=cg_bench_$(date +%s)_$$
pg=$CROWDGRID_TEST_PG
url="$pg?options=-csearch_path%3D$schema"
q() { psql "$url" -Atqc "$1"; }
psql "$pg" -qc "CREATE SCHEMA $schema"
declare -A pid api
mport=$(free_port)
cleanup() {
  for n in a b c; do [ -n "${pid[$n]:-}" ] && kill -TERM "${pid[$n]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "$pg" -qc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
# A broker with room for the centre's QoS 1 window and the sessions' queues (the defaults are 20 and 1,000).
printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_inflight_messages 1000\nmax_queued_messages 1000000\n' \
  "$mport" >"$dir/mosquitto.conf"
"$mosq" -c "$dir/mosquitto.conf" >"$dir/mosquitto.log" 2>&1 &
mpid=$!
trap 'kill $mpid 2>/dev/null || true; cleanup' EXIT
"$bin" sim-city --out "$dir" >/dev/null
sites=$(sed -n '/^sites = \[/,/^\]/p' "$dir/central.toml")
for n in a b c; do
  api[$n]=127.0.0.1:$(free_port)
  mkdir -p "$dir/$n"
  cat >"$dir/central-$n.toml" <<TOML
$sites

[broker]
mode = "external"
host = "127.0.0.1"
port = $mport
client_id = "centre"
topic_prefix = "crowdgrid/v1"

[edges]
key_file = "edge-master.key"

[store]
path = "$n/city.db"
retention_days = 7
dispatch_url = "$url"

[api]
listen = "${api[$n]}"

[cluster]
instance = "$n"
TOML
done
start() {
  RUST_LOG=${RUST_LOG:-info} "$bin" central --config "$dir/central-$1.toml" >>"$dir/$1.log" 2>&1 &
  pid[$1]=$!
}
healthy() { curl -fs "http://${api[$1]}/healthz" >/dev/null 2>&1; }
start a
until healthy a; do sleep 0.5; done
start b; start c
t=$(date +%s)
until [ "$(q "SELECT COUNT(DISTINCT owner) FROM partition_leases WHERE expires_at >= (extract(epoch from clock_timestamp()) * 1000)::bigint")" = 3 ] \
  && [ "$(q "SELECT MAX(n) - MIN(n) FROM (SELECT COUNT(*) n FROM partition_leases GROUP BY owner) x")" -le 1 ]; do
  sleep 0.5
  [ $(( $(date +%s) - t )) -lt 120 ] || { echo "cluster: the sites were not shared; see $dir/*.log" >&2; exit 1; }
done
echo "cluster: three instances share $(q 'SELECT COUNT(*) FROM partition_leases') sites: $(q "SELECT string_agg(owner || ' ' || n, ', ') FROM (SELECT owner, COUNT(*) n FROM partition_leases GROUP BY owner ORDER BY owner) x")"
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# PostgreSQL's CPU: every live server process, plus what the postmaster collected from those that exited.
pgticks() {
  { for p in $(pgrep -x postgres); do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null; done
    for p in $(pgrep -x -o postgres); do awk '{print $16 + $17}' "/proc/$p/stat" 2>/dev/null; done; } | awk '{s += $1} END {print s + 0}'
}
hz=$(getconf CLK_TCK)
stored() { q "SELECT COUNT(*) FROM readings"; }
declare -A c0
for n in a b c; do c0[$n]=$(ticks "${pid[$n]}"); done
s0=$(stored); t0=$(date +%s.%N); pg0=$(pgticks)
"$bin" sim-load --config "$dir/central-a.toml" --port "$mport" --duration-s "$secs" --cameras "$cams" \
  --probes $(( secs / 2 - 8 > 0 ? secs / 2 - 8 : 0 )) >"$dir/load.log" 2>&1 &
load=$!
# The credentials' reload (sim-load waits for it) and half the run, then kill -9 b.
sleep $(( 3 + secs / 2 ))
kt=$(date +%s.%N)
bc=$(( $(ticks "${pid[b]}") - ${c0[b]} ))
brss=$(grep VmRSS "/proc/${pid[b]}/status" | awk '{print $2}')
victims=$(q "SELECT string_agg(quote_literal(site), ',') FROM partition_leases WHERE owner = 'b'")
kill -9 "${pid[b]}"
km=$(q "SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint")
now_ms="(extract(epoch from clock_timestamp()) * 1000)::bigint"
until [ "$(q "SELECT COUNT(*) FROM partition_leases WHERE site IN ($victims) AND owner <> 'b' AND expires_at >= $now_ms")" = \
        "$(q "SELECT COUNT(*) FROM partition_leases WHERE site IN ($victims)")" ]; do sleep 0.1; done
leased=$(python3 -c "import time; print(f'{time.time() - $kt:.1f}')")
until [ "$(q "SELECT COUNT(DISTINCT site) FROM readings WHERE site IN ($victims) AND ts > $km + 500")" = \
        "$(q "SELECT COUNT(*) FROM partition_leases WHERE site IN ($victims)")" ]; do sleep 0.1; done
flowing=$(python3 -c "import time; print(f'{time.time() - $kt:.1f}')")
echo "cluster: kill -9 of b ($(echo "$victims" | tr -cd ',' | wc -c | awk '{print $1 + 1}') sites): leases taken over in $leased s, their readings stored again after $flowing s"
sleep 5
rt=$(date +%s.%N)
start b
until [ "$(q "SELECT COUNT(*) FROM partition_leases WHERE owner = 'b' AND expires_at >= $now_ms")" -gt 0 ]; do sleep 0.1; done
echo "cluster: b restarted and holds sites again after $(python3 -c "import time; print(f'{time.time() - $rt:.1f}')") s"
wait $load || true
sleep 5
s1=$(stored); t1=$(date +%s.%N); pg1=$(pgticks)
probes=$(q "SELECT COUNT(*) FROM readings WHERE source_id LIKE '%/probe'")
grep -E 'sim-load: t\+' "$dir/load.log" | tail -1 | sed 's/^/cluster: /'
grep -E 'sim-load: crossing' "$dir/load.log" | sed 's/^/cluster: /'
acked=$(grep -E 'sim-load: t\+' "$dir/load.log" | tail -1 | sed -E 's/.*acknowledged ([0-9]+).*/\1/')
python3 - "$s0" "$s1" "$t0" "$t1" "$acked" "$probes" <<'PY'
import sys
s0, s1, t0, t1, acked, probes = map(float, sys.argv[1:])
dt = t1 - t0
load = s1 - s0 - probes
print(f"cluster: the broker acknowledged {acked:.0f} load readings, {load:.0f} stored (+ {probes:.0f} probes): "
      f"{acked - load:.0f} missing")
PY
for n in a c; do
  c1=$(ticks "${pid[$n]}")
  echo "cluster: $n CPU $(python3 -c "print(f'{100 * ($c1 - ${c0[$n]}) / $hz / ($t1 - $t0):.0f}')") % of one core, RSS $(grep VmRSS "/proc/${pid[$n]}/status" | awk '{print $2}') kB"
done
echo "cluster: b (until killed) CPU $(python3 -c "print(f'{100 * $bc / $hz / ($kt - $t0):.0f}')") % of one core, RSS $brss kB"
echo "cluster: PostgreSQL CPU $(python3 -c "print(f'{100 * ($pg1 - $pg0) / $hz / ($t1 - $t0):.0f}')") % of one core (all its server processes)"
