#!/usr/bin/env bash
# The main command from the README: installs what is needed, builds, and runs the demo of both
# scenarios on the embedded defaults (in-process broker, SQLite). Extra arguments go to `crowdgrid demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --locked
exec target/release/crowdgrid demo "$@"
