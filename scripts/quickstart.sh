#!/usr/bin/env bash
# The main job: train strong models on MovieLens 100K, show metrics, a user's top-10 and the
# movies most similar to "Toy Story (1995)". Creates/reuses .venv on the way.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/env.sh" all
cd "$ROOT"
exec neuralrec quickstart "$@"
