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
