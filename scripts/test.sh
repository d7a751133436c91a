#!/usr/bin/env bash
# The test command: installs dependencies, starts PostgreSQL and runs every
# Go test (root-only network-namespace tests included when run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin:$HOME/go/bin
if [ "$(id -u)" = 0 ]; then
	scripts/install-deps.sh
	scripts/start-postgres.sh
fi
export TRELLIS_TEST_POSTGRES=${TRELLIS_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
# Test artifacts (the browser tests' screenshots) are kept here.
export TRELLIS_ARTIFACTS=${TRELLIS_ARTIFACTS:-$PWD/artifacts}
mkdir -p "$TRELLIS_ARTIFACTS"
gofmt_out=$(gofmt -l $(git ls-files '*.go') 2>/dev/null || true)
if [ -n "$gofmt_out" ]; then echo "gofmt needed on:"; echo "$gofmt_out"; exit 1; fi
go vet ./...
go test -p 2 -timeout 45m -count=1 ./... "$@"
