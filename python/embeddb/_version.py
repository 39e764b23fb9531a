"""_version.py -- the package's version: the project's (CMakeLists.txt
project(VERSION)); ctest test_py_version fails when they differ."""
__version__ = "0.1.0"
