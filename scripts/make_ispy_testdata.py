"""Extract the first few events of a CMS iSpy file (.ig) into a small .ig for the tests.

The `Header` and the chosen `Events/Run_R/Event_E` members are copied byte for byte into a
new zip (deflate, fixed timestamps, so the same input always gives the same file).

    .venv/bin/python scripts/make_ispy_testdata.py SOURCE.ig [--events 5] [-o OUTPUT.ig]

The file in tests/data/cms-ispy/ was made from MinimumBias_Run2012C_0.ig (see PROVENANCE.md
there).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
import zipfile
from pathlib import Path

EVENT_MEMBER = re.compile(r"Events/Run_\d+/Event_\d+")
FIXED_TIME = (2012, 1, 1, 0, 0, 0)  # zip timestamps: no build time in the output


def extract(source: Path, output: Path, n_events: int) -> list[str]:
    """Copy Header plus the first `n_events` event members of `source`; returns their names."""
    with zipfile.ZipFile(source) as src:
        names = src.namelist()
        events = [n for n in names if EVENT_MEMBER.fullmatch(n)][:n_events]
        if len(events) < n_events:
            raise SystemExit(f"{source}: only {len(events)} events, asked for {n_events}")
        chosen = [n for n in names if n == "Header"] + events
        output.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(output, "w") as dst:
            for name in chosen:
                info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                dst.writestr(info, src.read(name), compresslevel=9)
    return chosen


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="an iSpy .ig file")
    parser.add_argument("--events", type=int, default=5, help="events to keep (default 5)")
    parser.add_argument("-o", "--output", type=Path,
                        help="output .ig (default: tests/data/cms-ispy/<stem>_first<N>.ig)")
    args = parser.parse_args(argv)
    if args.events < 1:
        parser.error("--events must be at least 1")
    output = args.output or (Path(__file__).resolve().parents[1] / "tests" / "data" / "cms-ispy"
                             / f"{args.source.stem}_first{args.events}.ig")
    chosen = extract(args.source, output, args.events)
    print(f"{output}: {len(chosen) - 1} events, {output.stat().st_size} bytes")
    print(f"source sha256 {sha256(args.source)}")
    print(f"output sha256 {sha256(output)}")
    for name in chosen:
        print(f"  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
