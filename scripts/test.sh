#!/usr/bin/env bash
# The test command from the README: installs what the tests need, then runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
# PostgreSQL for the dispatch-store tests: the one configured, the machine's, or a private cluster started here.
eval "$(scripts/test-postgres.sh)"
echo "test: PostgreSQL at $CROWDGRID_TEST_PG"
cargo build --all-targets --locked
cargo test --workspace --locked -- --test-threads 4 "$@"
# The gate/base-station edge without the `vision` feature: builds and passes its tests with neither OpenCV nor
# ONNX Runtime in its dependency tree, and its binary links neither (docs/DEPLOY.md).
if cargo tree -p crowdgrid-edge --no-default-features -e normal --prefix none --locked | grep -Eq '^(opencv|ort|clang-sys) '; then
  echo "test: the gate-only edge depends on OpenCV or ONNX Runtime" >&2; exit 1
fi
cargo test -p crowdgrid-edge --no-default-features --locked -- --test-threads 4 "$@"
if ldd target/debug/crowdgrid-edge | grep -Eiq 'opencv|onnxruntime'; then
  echo "test: the gate-only crowdgrid-edge links OpenCV or ONNX Runtime" >&2; exit 1
fi
