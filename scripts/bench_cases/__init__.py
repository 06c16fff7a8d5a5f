"""The cases of `scripts/bench.py`, one module each; `common` holds the shared helpers."""
