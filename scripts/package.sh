#!/usr/bin/env bash
# Builds the Debian packages into target/debian/ (docs/DEPLOY.md):
#   crowdgrid-edge         gates and base stations: no OpenCV, no ONNX Runtime
#   crowdgrid-edge-vision  cameras and drones (OpenCV from Debian, ONNX Runtime and the models shipped)
#   crowdgrid-central      the centre, without OpenCV
# and prints each binary's size. Needs scripts/setup.sh first (the vision build's OpenCV and ONNX Runtime).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo-deb >/dev/null 2>&1; then
  echo "package: installing cargo-deb from crates.io"
  cargo install cargo-deb --locked --version 3.6.2
fi
cargo deb --locked -p crowdgrid-edge
cp target/release/crowdgrid-edge target/release/crowdgrid-edge-gate
cargo deb --locked -p crowdgrid-edge --variant vision
cargo deb --locked -p crowdgrid
for b in crowdgrid-edge-gate crowdgrid-edge crowdgrid; do
  strip --strip-all -o "target/release/$b.stripped" "target/release/$b"
  echo "package: $b $(stat -c %s "target/release/$b.stripped") bytes stripped"
done
ls -l target/debian/*.deb
