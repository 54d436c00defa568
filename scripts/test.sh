#!/usr/bin/env bash
# The test job: lint and the whole test suite. Creates/reuses .venv on the way.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/env.sh" "all,dev"
cd "$ROOT"
# the real-data tests read ../shared/datasets when it is there and nothing else was chosen
if [ -z "${NEURALREC_DATA_HOME:-}" ] && [ -d "$ROOT/../shared/datasets" ]; then
  export NEURALREC_DATA_HOME="$(cd "$ROOT/../shared/datasets" && pwd)"
fi
# Debian's chromium for tests/test_browser.py (apt-get, only when missing); if it cannot be
# installed the browser test says why (skip where apt-get is not allowed, fail otherwise)
bash scripts/install_browser.sh || echo "warning: chromium install failed" >&2
ruff check src tests benchmarks
ruff format --check src tests benchmarks
python -m pytest -q "$@"
