#!/usr/bin/env bash
# The Python side of the benchmarks: a virtual environment in
# scripts/bench/.venv with the peers from PyPI and matplotlib for the plots.
# Idempotent; prints the interpreter path.
set -euo pipefail
DIR="$(cd "$(dirname "$0")" && pwd)/.venv"
PY="${PYTHON:-/usr/bin/python3}"
if [ ! -x "$DIR/bin/python" ]; then
  "$PY" -m venv "$DIR" 2>/dev/null || { apt-get install -y -q python3-venv >/dev/null; "$PY" -m venv "$DIR"; }
fi
if ! "$DIR/bin/python" -c 'import surprise, river, implicit, matplotlib' 2>/dev/null; then
  "$DIR/bin/pip" install -q --upgrade pip >&2
  "$DIR/bin/pip" install -q "numpy<2" scikit-surprise river implicit matplotlib >&2
fi
echo "$DIR/bin/python"
