#!/usr/bin/env bash
# Set up what is missing, then run the farm on its built-in default (500 events unless
# told otherwise). Extra arguments go to `trigger-sim run`, e.g. --events 2000 --rate 200.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/trigger-sim run "$@"
