#!/usr/bin/env bash
# Create or reuse the project's virtual environment (.venv) and install neuralrec into it.
# Usage: source scripts/env.sh [extras]   (extras default: all)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${NEURALREC_VENV:-$ROOT/.venv}"
EXTRAS="${1:-all}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.neuralrec-installed-$EXTRAS"
# reinstall only when the dependency list changed
HASH="$(cat "$ROOT/pyproject.toml" "$ROOT/constraints.txt" | sha256sum | cut -c1-16)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$HASH" ]; then
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # torch first, pinned: a CPU build on this kind of machine, never the CUDA one
  "$VENV/bin/python" -m pip install -q -c "$ROOT/constraints.txt" torch==2.13.0
  "$VENV/bin/python" -m pip install -q -c "$ROOT/constraints.txt" -e "$ROOT[$EXTRAS]"
  echo "$HASH" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
