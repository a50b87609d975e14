#!/usr/bin/env bash
# The simulated city on this machine, one centre on the embedded defaults (issue 14; docs/DEPLOY.md): Changzhou's
# 62 sub-districts / 7,151 grids / 20,000 zones from `crowdgrid sim-city`, and `crowdgrid sim-load` playing a
# base-station estimate of every zone every 10 s plus CAMERAS cameras at 1 reading/s, signed, over MQTT. Prints
# readings/s stored, the centre's CPU (share of one core) and RSS; asserts nothing.
#   bench/city.sh [SECONDS=60] [CAMERAS=2000] [BIN=target/release/crowdgrid]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
cams=${2:-2000}
bin=${3:-target/release/crowdgrid}
[ -x "$bin" ] || cargo build --release --locked --bin crowdgrid
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
dir=$(mktemp -d)
api=127.0.0.1:$(free_port)
mqtt=127.0.0.1:$(free_port)
"$bin" sim-city --out "$dir" --api-listen "$api" --mqtt-listen "$mqtt"
"$bin" central --config "$dir/central.toml" >"$dir/central.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
t=$(date +%s)
until curl -fs "http://$api/healthz" >/dev/null 2>&1; do
  sleep 0.5
  [ $(( $(date +%s) - t )) -lt 120 ] || { echo "city: the centre did not start; see $dir/central.log" >&2; exit 1; }
done
echo "city: centre ready in $(( $(date +%s) - t )) s"
stored() { curl -fs "http://$api/metrics" | awk '/^crowdgrid_readings_stored_total /{print $2}'; }
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
s0=$(stored); c0=$(ticks); t0=$(date +%s.%N)
"$bin" sim-load --config "$dir/central.toml" --duration-s "$secs" --cameras "$cams"
sleep 2
s1=$(stored); c1=$(ticks); t1=$(date +%s.%N)
python3 - "$s0" "$s1" "$c0" "$c1" "$t0" "$t1" "$hz" <<'PY'
import sys
s0, s1, c0, c1, t0, t1, hz = map(float, sys.argv[1:])
dt = t1 - t0
print(f"city: stored {s1 - s0:.0f} readings in {dt:.1f} s = {(s1 - s0) / dt:.0f} readings/s; "
      f"centre CPU {100 * (c1 - c0) / hz / dt:.0f} % of one core")
PY
grep -E 'VmRSS|VmHWM' "/proc/$pid/status" | sed 's/^/city: centre /'
