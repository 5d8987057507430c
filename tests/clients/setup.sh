#!/usr/bin/env bash
# Installs the MCP clients that tests/integration/python-sdk.test.mjs drives
# kiln through: the official Python SDK at two versions, each in its own
# virtual environment beside this script.
#
#   tests/clients/setup.sh PYTHON
#
# PYTHON is any Python 3.10 or newer (tests/run.sh passes the 3.12 it was
# given).  An environment is made again only when its requirements file or
# the Python changed; otherwise this is a quick no-op.
#
#   .venv-current   requirements-current.txt   the newest SDK release
#   .venv-1.9       requirements-1.9.txt       SDK 1.9.4, protocol 2025-03-26
set -euo pipefail

cd "$(dirname "$0")"
python=${1:?usage: tests/clients/setup.sh PYTHON}

log() { printf 'clients: %s\n' "$*" >&2; }

"$python" - <<'PY' || { log "error: $python is older than 3.10, which the MCP Python SDK needs"; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 10) else 1)
PY

make_venv() { # dir requirements-file
  local venv=$1 requirements=$2 stamp want
  stamp=$venv/.kiln-requirements
  want="$("$python" -c 'import sys; print(sys.version)') $(sha256sum "$requirements" | cut -d' ' -f1)"
  if [ -x "$venv/bin/python3" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    log "$venv is up to date"
    return
  fi
  log "creating $venv from $requirements"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  # The stamp is written last, so that an install cut short is done again
  # next time rather than taken for a finished one.
  "$venv/bin/python3" -m pip install -q --disable-pip-version-check -r "$requirements" >&2
  echo "$want" >"$stamp"
}

make_venv .venv-current requirements-current.txt
make_venv .venv-1.9 requirements-1.9.txt
