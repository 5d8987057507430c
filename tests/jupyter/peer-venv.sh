#!/usr/bin/env bash
# Makes tests/clients/.venv-NAME from REQUIREMENTS (pinned), for the
# programs the Jupyter tests run beside kiln: ipykernel, which the notebook
# tests compare kiln's kernel with, and jupyter_server, which starts kiln
# as JupyterLab does.  With SANDBOX_VENV, on the Python of kiln's sandbox
# environment, whose packages (numpy, pandas, matplotlib) it sees through a
# .pth file, so that both kernels run the same libraries.  Made again only
# when the pins or the sandbox changed.
#
#   tests/jupyter/peer-venv.sh NAME REQUIREMENTS [SANDBOX_VENV]
#
# Without SANDBOX_VENV, on $PYTHON.  Prints the environment's python on stdout.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
name=$1
requirements=$(realpath "$2")
venv=$(cd "$here/.." && pwd)/clients/.venv-$name
python=${PYTHON:-}
sandbox_site=
if [ -n "${3:-}" ]; then
  python=$(realpath "$3")/bin/python3
  sandbox_site=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
fi
[ -n "$python" ] || { echo "peer-venv.sh: give SANDBOX_VENV or set PYTHON" >&2; exit 2; }

stamp=$venv/.kiln-requirements
want="$("$python" -c 'import sys; print(sys.version)') $sandbox_site $(sha256sum "$requirements" | cut -d' ' -f1)"
if [ -x "$venv/bin/python3" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  echo "jupyter tests: $venv is up to date" >&2
else
  echo "jupyter tests: creating $venv from $requirements" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python3" -m pip install -q --disable-pip-version-check -r "$requirements" >&2
  if [ -n "$sandbox_site" ]; then
    site=$("$venv/bin/python3" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    echo "$sandbox_site" >"$site/kiln-sandbox.pth"
  fi
  echo "$want" >"$stamp"
fi
echo "$venv/bin/python3"
