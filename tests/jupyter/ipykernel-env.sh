#!/usr/bin/env bash
# Makes tests/clients/.venv-ipykernel: ipykernel at the versions
# ipykernel-requirements.txt pins, on the Python of kiln's sandbox
# environment, whose packages (numpy, pandas, matplotlib) it sees through a
# .pth file, so that the notebook tests run the same libraries in both
# kernels.  Made again only when the pins or the sandbox changed.
#
#   tests/jupyter/ipykernel-env.sh SANDBOX_VENV
#
# Prints the environment's python on stdout.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
venv=$(cd "$here/.." && pwd)/clients/.venv-ipykernel
requirements=$here/ipykernel-requirements.txt
sandbox=$(realpath "$1")
sandbox_site=$("$sandbox/bin/python3" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

stamp=$venv/.kiln-requirements
want="$sandbox_site $(sha256sum "$requirements" | cut -d' ' -f1)"
if [ -x "$venv/bin/python3" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  echo "ipykernel for the notebook tests: $venv is up to date" >&2
else
  echo "ipykernel for the notebook tests: creating $venv" >&2
  rm -rf "$venv"
  "$sandbox/bin/python3" -m venv "$venv"
  "$venv/bin/python3" -m pip install -q --disable-pip-version-check -r "$requirements" >&2
  site=$("$venv/bin/python3" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "$sandbox_site" >"$site/kiln-sandbox.pth"
  echo "$want" >"$stamp"
fi
echo "$venv/bin/python3"
