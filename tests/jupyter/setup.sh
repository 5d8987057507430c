#!/usr/bin/env bash
# Makes the virtual environment the Jupyter tests run in: jupyter_client,
# nbclient and pytest at the versions requirements.txt pins, in
# tests/clients/.venv-jupyter.
#
#   tests/jupyter/setup.sh [PYTHON]
#
# PYTHON is any Python 3.10 or newer; without it, a 3.12 from pyenv or the
# distro, else python3.  The environment is made again only when
# requirements.txt or the Python changed; otherwise this is a quick no-op.
# Prints the environment's python on stdout.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
venv=$(cd "$here/.." && pwd)/clients/.venv-jupyter
requirements=$here/requirements.txt

log() { printf 'jupyter tests: %s\n' "$*" >&2; }

# Whether $1 runs and is 3.10 or newer (a pyenv shim may exist and fail).
usable() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' >/dev/null 2>&1; }

python=${1:-}
if [ -z "$python" ]; then
  pyenv_root=$(pyenv root 2>/dev/null || true)
  for c in $(ls -d "${pyenv_root:-/nonexistent}"/versions/3.12.*/bin/python3.12 2>/dev/null | sort -V -r) \
    /usr/bin/python3.12 /usr/local/bin/python3.12 python3; do
    if usable "$c"; then
      python=$c
      break
    fi
  done
fi
[ -n "$python" ] || { log "error: no Python 3.10 or newer found"; exit 1; }
usable "$python" || { log "error: $python does not run, or is older than 3.10"; exit 1; }

stamp=$venv/.kiln-requirements
want="$("$python" -c 'import sys; print(sys.version)') $(sha256sum "$requirements" | cut -d' ' -f1)"
if [ -x "$venv/bin/python3" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  log "$venv is up to date"
else
  log "creating $venv from $requirements"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  # The stamp is written last, so that an install cut short is done again
  # next time rather than taken for a finished one.
  "$venv/bin/python3" -m pip install -q --disable-pip-version-check -r "$requirements" >&2
  echo "$want" >"$stamp"
fi
echo "$venv/bin/python3"
