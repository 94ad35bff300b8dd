"""The optional C extension edge._rowstep (one stream's scoring step, see edge/_rowstep.c); every
other setting is in pyproject.toml. Where it does not build (no C compiler), the package installs
without it and runs the same arithmetic in Python."""

import numpy
from setuptools import Extension, setup

setup(ext_modules=[Extension(
    "edge._rowstep", ["edge/_rowstep.c"], include_dirs=[numpy.get_include()], optional=True,
    # no fused multiply-add (aarch64 and x86 with FMA would contract a*b + c): bit-equal results
    extra_compile_args=["-O2", "-ffp-contract=off"],
)])
