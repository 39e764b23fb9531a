"""embeddb_build.py -- the PEP 517 build backend of python/pyproject.toml:
setuptools' own backend, taken from Debian's python3-setuptools and
python3-wheel, so that `pip install ./python` works offline (no build
dependency is fetched from PyPI).

pip builds in an isolated environment that hides the system's packages and
would download `setuptools` and `wheel` for it; this in-tree backend
declares no requirements and adds Debian's dist-packages directory to the
build's path instead. Where setuptools is importable already (pip
--no-build-isolation, or another distribution) it is used as it is.
"""
import os
import sys


def _debian_setuptools():
    try:
        import setuptools  # noqa: F401
        import wheel  # noqa: F401
        return
    except ImportError:
        pass
    for d in (os.path.join(sys.base_prefix, "lib", "python3", "dist-packages"),
              "/usr/lib/python3/dist-packages"):
        if os.path.isdir(os.path.join(d, "setuptools")):
            sys.path.append(d)
            return
    raise ImportError("building embeddb needs setuptools and wheel: "
                      "apt-get install python3-setuptools python3-wheel")


_debian_setuptools()

from setuptools import build_meta as _bm  # noqa: E402

build_wheel = _bm.build_wheel
build_sdist = _bm.build_sdist
prepare_metadata_for_build_wheel = _bm.prepare_metadata_for_build_wheel


def get_requires_for_build_wheel(config_settings=None):
    return []  # setuptools would ask for `wheel` from PyPI: Debian's is on the path


def get_requires_for_build_sdist(config_settings=None):
    return []
