"""Build farm/_fragment_drain (the event builder's fragment input in C) in place.

    .venv/bin/python scripts/build_fragment_drain.py

Needs a C compiler and Python's headers, nothing else: libzmq and zlib-ng are found at run
time, from pyzmq and zlib-ng (farm/fragment_drain.py). `scripts/setup.sh` runs it; without
the extension the builder receives and checks fragments in plain Python, more slowly.
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

if __name__ == "__main__":
    os.chdir(ROOT)
    setup(name="trigger-sim-fragment-drain", script_args=["build_ext", "--inplace", *sys.argv[1:]],
          ext_modules=[Extension("farm._fragment_drain", ["farm/_fragment_drain.c"],
                                 extra_compile_args=["-O2", "-std=c11"])])
