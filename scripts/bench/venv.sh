#!/usr/bin/env bash
# The Python side of the benchmarks: a virtual environment in
# scripts/bench/.venv with the peers from PyPI (Surprise, river, implicit) and
# matplotlib for the plots, at fixed versions so runs compare. Idempotent;
# prints the interpreter path.
set -euo pipefail
DIR="$(cd "$(dirname "$0")" && pwd)/.venv"
PY="${PYTHON:-/usr/bin/python3}"
PKGS=(scikit-surprise==1.1.5 river==0.26.1 implicit==0.7.3 matplotlib==3.11.2)
if [ ! -x "$DIR/bin/python" ]; then
  "$PY" -m venv "$DIR" 2>/dev/null || { apt-get install -y -q python3-venv >/dev/null; "$PY" -m venv "$DIR"; }
fi
if ! "$DIR/bin/python" - "${PKGS[@]}" 2>/dev/null <<'PYEOF'
import sys
from importlib.metadata import version
for spec in sys.argv[1:]:
    name, want = spec.split("==")
    if version(name) != want:
        sys.exit(1)
import surprise, river, implicit, matplotlib  # noqa: E401,F401
PYEOF
then
  echo "venv: installing ${PKGS[*]} into $DIR" >&2
  "$DIR/bin/pip" install -q --upgrade pip >&2
  "$DIR/bin/pip" install -q "${PKGS[@]}" >&2
fi
echo "$DIR/bin/python"
