#!/usr/bin/env bash
# Sets kiln up on a fresh Debian/Ubuntu machine, then does one thing:
#
#   scripts/setup.sh serve [kiln serve options]   build, then run `kiln serve`
#   scripts/setup.sh test                         build, then run every test
#   scripts/setup.sh build                        just build
#
# Setup is idempotent and quick when nothing changed: system packages via
# apt (only if missing), the sandbox's virtual environment made from a
# Python 3.12 with a shared libpython, and the meson build.
#
# Which Python: $KILN_PYTHON if set; otherwise the distro's python3.12, or a
# pyenv 3.12 build under $(pyenv root)/versions/3.12.* (never pyenv's shims).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
mode=${1:-build}
[ $# -gt 0 ] && shift

log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# --- system packages -------------------------------------------------------
apt_packages=(gcc pkg-config meson ninja-build libjansson-dev libseccomp-dev libsqlite3-dev libpng-dev zlib1g-dev libmicrohttpd-dev libsodium-dev libzmq3-dev)
if [ "$mode" = test ]; then
  # openssl makes the HTTPS test's certificate; nginx is the router of the
  # scale-out test (tests/integration/scaleout.test.mjs).
  apt_packages+=(clang-format openssl)
  command -v nginx >/dev/null || apt_packages+=(nginx-light)
  command -v node >/dev/null && command -v npm >/dev/null || apt_packages+=(nodejs npm)
fi

missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

find_python() {
  local c
  if [ -n "${KILN_PYTHON:-}" ]; then echo "$KILN_PYTHON"; return; fi
  local pyenv_root=${PYENV_ROOT:-}
  if [ -z "$pyenv_root" ] && command -v pyenv >/dev/null; then pyenv_root=$(pyenv root); fi
  [ -z "$pyenv_root" ] && pyenv_root=$HOME/.pyenv
  for c in /usr/bin/python3.12 /usr/local/bin/python3.12 $(ls -d "$pyenv_root"/versions/3.12.*/bin/python3.12 2>/dev/null | sort -V -r); do
    [ -x "$c" ] || continue
    # An embeddable Python: shared libpython and its pkg-config file.
    if "$c" - <<'PY' 2>/dev/null; then echo "$c"; return; fi
import sys, sysconfig, os
assert sys.version_info[:2] == (3, 12)
assert sysconfig.get_config_var("Py_ENABLE_SHARED")
pc = sysconfig.get_config_var("LIBPC")
assert os.path.exists(os.path.join(pc, "python-3.12-embed.pc"))
import venv, ensurepip
PY
  done
}

python=$(find_python || true)
if [ -z "$python" ]; then
  # The distro's 3.12 (Ubuntu 24.04, Debian 13): the interpreter, its
  # shared library and headers, and venv.
  missing+=(python3.12 python3.12-dev python3.12-venv libpython3.12-dev)
fi

if [ ${#missing[@]} -gt 0 ]; then
  log "installing system packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
[ -n "$python" ] || python=$(find_python || true)
[ -n "$python" ] || die "no Python 3.12 with a shared libpython and python-3.12-embed.pc found; set KILN_PYTHON"
log "Python: $python"

# --- the sandbox's virtual environment --------------------------------------
venv=$root/.venv
stamp=$venv/.kiln-requirements
want="$("$python" -c 'import sys; print(sys.version)') $(sha256sum python/requirements.txt | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python3" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "creating the sandbox environment in .venv"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python3" -m pip install -q --disable-pip-version-check -r python/requirements.txt >&2
  echo "$want" >"$stamp"
fi

# --- build -----------------------------------------------------------------
pc=$("$python" -c 'import sysconfig; print(sysconfig.get_config_var("LIBPC"))')
configure() { # dir [meson options...]
  local dir=$1; shift
  if [ ! -f "$dir/build.ninja" ]; then
    PKG_CONFIG_PATH=$pc${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH} \
      meson setup "$dir" -Dpython="$python" -Dvenv="$venv" "$@" >&2
  fi
  ninja -C "$dir" >&2
}
configure build -Dwerror=true

case "$mode" in
  build) log "built build/kiln" ;;
  serve) exec "$root/build/kiln" serve "$@" ;;
  test) exec "$root/tests/run.sh" "$python" ;;
  *) die "unknown mode '$mode' (serve, test or build)" ;;
esac
