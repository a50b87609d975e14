#!/usr/bin/env bash
# The test command from the README: installs what the tests need, then runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
cargo build --all-targets --locked
cargo test --workspace --locked -- --test-threads 4 "$@"
