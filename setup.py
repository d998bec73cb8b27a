"""Only the optional C extension lives here; everything else is in pyproject.toml.

``optional=True``: without a compiler (or the Python headers) the build of the extension fails
quietly and binhub installs anyway, running the pure-Python twins (binhub/_speedups/pure.py for
``_relay``, binhub.binlog.row_json's pure path for ``_rows``).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("binhub._speedups._relay", ["binhub/_speedups/_relay.c"],
                             extra_compile_args=["-O3"], optional=True),
                   Extension("binhub._speedups._redo", ["binhub/_speedups/_redo.c"],
                             depends=["binhub/_speedups/_crc32c.h"], extra_compile_args=["-O3"], optional=True),
                   Extension("binhub._speedups._pages", ["binhub/_speedups/_pages.c"],
                             depends=["binhub/_speedups/_crc32c.h"], extra_compile_args=["-O3"], optional=True),
                   Extension("binhub._speedups._tsv", ["binhub/_speedups/_tsv.c"], extra_compile_args=["-O3"], optional=True),
                   Extension("binhub._speedups._rows", ["binhub/_speedups/_rows.c"],
                             extra_compile_args=["-O3"], optional=True)])
