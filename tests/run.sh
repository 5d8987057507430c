#!/usr/bin/env bash
# The whole test suite: called by `scripts/setup.sh test` once the build
# and the sandbox environment exist.  Unit tests, the MCP integration tests
# through the official TypeScript SDK client, the same again under
# AddressSanitizer and UndefinedBehaviorSanitizer, and the format check.
set -euo pipefail
cd "$(dirname "$0")/.."
python=$1
root=$PWD
export KILN_HOME=$(mktemp -d /tmp/kiln-test-home.XXXXXX)
trap 'rm -rf "$KILN_HOME"' EXIT

step() { printf '\n== %s\n' "$*"; }

step "format (clang-format --dry-run)"
clang-format --dry-run -Werror $(git ls-files '*.c' '*.h')

step "unit tests"
meson test -C build --print-errorlogs

step "integration tests (MCP TypeScript SDK client)"
(cd tests/integration && npm ci --no-audit --no-fund --loglevel=error)
(cd tests/integration && KILN_BIN=$root/build/kiln node --test --test-concurrency=1 .)

step "sanitizers (address, undefined): build"
pc=$("$python" -c 'import sysconfig; print(sysconfig.get_config_var("LIBPC"))')
if [ ! -f build-asan/build.ninja ]; then
  PKG_CONFIG_PATH=$pc meson setup build-asan -Dpython="$python" -Dvenv="$root/.venv" \
    -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug -Dwerror=true >/dev/null
fi
ninja -C build-asan >/dev/null
# CPython's own allocator and interned objects are not ASan-clean at exit
# and workers never exit through the allocator: leaks are not checked.
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

step "sanitizers: unit tests"
meson test -C build-asan --print-errorlogs

step "sanitizers: integration tests"
(cd tests/integration && KILN_BIN=$root/build-asan/kiln node --test --test-concurrency=1 .)

printf '\nall tests passed\n'
