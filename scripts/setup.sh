#!/usr/bin/env bash
# Set up what is missing: a virtual environment in .venv with trigger-sim (editable) and
# its test dependencies. Quick when nothing changed (re-installs only when pyproject.toml
# is newer than the last install).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "error: trigger-sim needs Python >= 3.11; set PYTHON=/path/to/python3.11" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    echo "creating .venv" >&2
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "installing trigger-sim and its dependencies into .venv" >&2
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".[test]"
    touch "$stamp"
fi
# The event builder's fragment input in C (farm/_fragment_drain): without it the builder
# receives and checks fragments in plain Python, more slowly (needs a C compiler and
# Python's headers; quick when up to date).
if ! log=$(.venv/bin/python scripts/build_fragment_drain.py --quiet 2>&1); then
    echo "$log" | tail -5 >&2
    echo "warning: farm/_fragment_drain was not built; the event builder receives fragments in plain Python" >&2
fi
