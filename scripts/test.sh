#!/usr/bin/env bash
# Set up what is missing, then run the whole test suite (unit, property and integration
# tests with a real tritonserver). Extra arguments go to pytest, e.g. -m "not integration".
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
