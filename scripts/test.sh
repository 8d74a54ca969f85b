#!/usr/bin/env bash
# The test command: unit tests and the integration tests, built for the
# static musl target, so the integration tests spawn the same binary that
# ships. Extra arguments go to cargo test (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec cargo test --release --target x86_64-unknown-linux-musl "$@"
