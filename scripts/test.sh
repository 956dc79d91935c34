#!/usr/bin/env bash
# Runs the whole test suite against real services: PGlite and a PostgreSQL server, the in-process
# bus and a Redis server, and Debian's ostree/flatpak. When FLATYARD_TEST_POSTGRES_URL and
# FLATYARD_TEST_REDIS_URL are not given, it starts throwaway servers and stops them afterwards.
# Extra arguments go to `deno test` (e.g. a file or --filter).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
say() { printf '[test] %s\n' "$*" >&2; }

if [ -z "${FLATYARD_TEST_POSTGRES_URL:-}" ] || [ -z "${FLATYARD_TEST_REDIS_URL:-}" ]; then
  svc=$(mktemp -d /tmp/flatyard-services.XXXXXX)
  trap '"$top/scripts/services.sh" stop "$svc"' EXIT
  # shellcheck disable=SC1090
  source "$("$top/scripts/services.sh" start "$svc")"
fi
export FLATYARD_TEST_POSTGRES_URL FLATYARD_TEST_REDIS_URL
# Every backend must run: a missing server is a failure, not a skip.
export FLATYARD_TEST_REQUIRE_ALL=1
say "PostgreSQL: $FLATYARD_TEST_POSTGRES_URL  Redis: $FLATYARD_TEST_REDIS_URL"
cd "$top"
"$top/.tools/bin/deno" test -A --parallel "$@"
