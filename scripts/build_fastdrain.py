"""Build farm/_fastdrain (the builder's fragment input in C) in place, with the running Python.

    .venv/bin/python scripts/build_fastdrain.py

Needs a C compiler and Python's headers, nothing else (libzmq and zlib-ng are found at run
time from pyzmq and zlib-ng). Without the extension the builder runs its pure-Python path.
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

if __name__ == "__main__":
    os.chdir(ROOT)
    setup(name="trigger-sim-fastdrain", script_args=["build_ext", "--inplace", *sys.argv[1:]],
          ext_modules=[Extension("farm._fastdrain", ["farm/_fastdrain.c"], extra_compile_args=["-O2", "-std=c11"])])
