#!/usr/bin/env bash
# The test job: lint and the whole test suite. Creates/reuses .venv on the way.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/env.sh" "all,dev"
cd "$ROOT"
ruff check src tests benchmarks
ruff format --check src tests benchmarks
python -m pytest -q "$@"
