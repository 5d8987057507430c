#!/usr/bin/env bash
# The whole test suite: called by `scripts/setup.sh test` once the build
# and the sandbox environment exist.  Unit tests, a program embedding the
# installed libkiln (tests/embed/api), the MCP integration tests
# through the official TypeScript SDK client, the official Python SDK (at its
# newest release and at 1.9.4) and the MCP Inspector's command line, the
# Jupyter kernel through jupyter_client and nbclient, the official MCP
# conformance suite's server scenarios (tests/conformance), the unit and
# MCP integration tests again under AddressSanitizer and
# UndefinedBehaviorSanitizer, and the format check.
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

step "embedding API: libkiln installed, an example built against it with pkg-config (tests/embed/api)"
# Exits 77 only where no front can run at all: said, and not a failure.
rc=0
tests/embed/api/run build || rc=$?
[ $rc = 0 ] || [ $rc = 77 ] || exit $rc

step "deployment files (Kubernetes schemas, the router's nginx configuration)"
tests/deploy/run "$python"

step "integration tests (MCP TypeScript SDK, Python SDK and Inspector clients)"
# The Python SDK clients, each in its own environment (tests/clients); the
# TypeScript SDK, the Inspector and the Node 22 it runs on come from npm ci.
tests/clients/setup.sh "$python"
(cd tests/integration && npm ci --no-audit --no-fund --loglevel=error)
(cd tests/integration && KILN_BIN=$root/build/kiln node --test --test-concurrency=1 .)

step "Jupyter kernel (jupyter_client and nbclient, tests/jupyter)"
# Exits 77 where kiln cannot jail its workers: said, and not a failure.
rc=0
PYTHON=$python tests/jupyter/run || rc=$?
[ $rc = 0 ] || [ $rc = 77 ] || exit $rc

step "MCP conformance suite (kiln serve --http and the fixture server of mcp/)"
tests/conformance/run

step "container: hadolint on docker/Dockerfile and the seccomp profile's additions"
tests/container/lint

step "container: the image built and run with podman, driven over HTTP (tests/container)"
tests/container/run

step "security battery, kiln as root"
if [ "$(id -u)" = 0 ]; then
  (cd tests/integration && KILN_BIN=$root/build/kiln node --test --test-concurrency=1 ../security/)
else
  echo "skip: not running as root"
fi

step "security battery, kiln unprivileged (user namespaces)"
run_unprivileged() {
  # As root, the battery runs again as nobody.  A pyenv Python under a
  # private home (/root is 0700) is out of nobody's reach: its parent
  # directories get the search bit (x, not r) for the duration of the run.
  local py_home restore=() d
  py_home=$("$python" -c 'import sys; print(sys.base_prefix)')
  d=$py_home
  while [ "$d" != / ]; do
    d=$(dirname "$d")
    if [ "$(stat -c %A "$d" | cut -c10)" != x ] && [ "$(stat -c %A "$d" | cut -c10)" != t ]; then
      restore+=("$d:$(stat -c %a "$d")")
      chmod o+x "$d"
    fi
  done
  local unpriv_home
  unpriv_home=$(mktemp -d /tmp/kiln-unpriv-home.XXXXXX)
  chown nobody "$unpriv_home"
  local rc=0
  (cd tests/integration && setpriv --reuid=65534 --regid=65534 --clear-groups \
    env HOME="$unpriv_home" KILN_HOME="$unpriv_home" KILN_BIN="$root/build/kiln" \
    node --test --test-concurrency=1 ../security/) || rc=$?
  for r in "${restore[@]}"; do chmod "${r##*:}" "${r%:*}"; done
  rm -rf "$unpriv_home"
  return $rc
}
if [ "$(id -u)" != 0 ]; then
  (cd tests/integration && KILN_BIN=$root/build/kiln node --test --test-concurrency=1 ../security/)
elif ! command -v setpriv >/dev/null || ! id nobody >/dev/null 2>&1; then
  echo "skip: no setpriv or no 'nobody' user to run as"
elif ! setpriv --reuid=65534 --regid=65534 --clear-groups unshare -U true 2>/dev/null; then
  echo "skip: this host does not let unprivileged users create user namespaces (see kiln doctor)"
else
  run_unprivileged
fi

step "security battery without the jail, kiln as root: every attack must be caught"
# KILN_EXPECT_UNJAILED=1 makes the battery start kiln with
# --insecure-no-sandbox and invert each attack on the jail: it passes only
# if its own assertions fail.  One that passes here cannot tell a jailed
# worker from an unjailed one, and this step fails.  The attacks are
# written to leave the host as they found it.  As root, since the kernel
# itself refuses some attacks (mknod, pivot_root) to an unprivileged user.
if [ "$(id -u)" = 0 ]; then
  (cd tests/integration && KILN_EXPECT_UNJAILED=1 KILN_BIN=$root/build/kiln node --test --test-concurrency=1 ../security/)
else
  echo "skip: not running as root"
fi

step "soak: 1,000 cells with faults injected (tests/soak)"
KILN_BIN=$root/build/kiln tests/soak/run --cells 1000

step "sanitizers (address, undefined): build"
pc=$("$python" -c 'import sysconfig; print(sysconfig.get_config_var("LIBPC"))')
if [ ! -f build-asan/build.ninja ]; then
  PKG_CONFIG_PATH=$pc meson setup build-asan -Dpython="$python" -Dvenv="$root/.venv" \
    -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug -Dwerror=true >/dev/null
fi
ninja -C build-asan >/dev/null
# CPython's own allocator and interned objects are not ASan-clean at exit
# and workers never exit through the allocator: leaks are not checked.
# A cell that segfaults must die of SIGSEGV as it would in production, not
# be turned into an ASan report and SIGABRT.
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:handle_segv=0:handle_sigbus=0:handle_sigfpe=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

step "sanitizers: unit tests"
meson test -C build-asan --print-errorlogs

step "sanitizers: integration tests"
(cd tests/integration && KILN_BIN=$root/build-asan/kiln node --test --test-concurrency=1 .)

step "fuzzing (libFuzzer harnesses of tests/fuzz, 60 s each)"
tests/fuzz/run 60

step "the C code compiles against Python 3.11 (kernel/base/pycompat.h)"
py311=
for c in /usr/bin/python3.11 $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.11.*/bin/python3.11 2>/dev/null); do
  pc311=$("$c" -c 'import sysconfig; print(sysconfig.get_config_var("LIBPC") or "")' 2>/dev/null || true)
  if [ -n "$pc311" ] && [ -f "$pc311/python-3.11-embed.pc" ]; then py311=$c; break; fi
done
if [ -n "$py311" ]; then
  [ -f build-py311/build.ninja ] || PKG_CONFIG_PATH=$pc311 meson setup build-py311 -Dpython="$py311" -Dwerror=true >/dev/null
  ninja -C build-py311 >/dev/null
  echo "compiled against $py311"
else
  echo "skip: no Python 3.11 with python-3.11-embed.pc on this host"
fi

printf '\nall tests passed\n'
