# Cross build for 64-bit ARM boards (aarch64, Debian arm64):
#   cmake -S . -B build-aarch64 --toolchain toolchains/aarch64-linux-gnu.cmake
# Needs gcc-aarch64-linux-gnu and the lib*-dev:arm64 packages, or
# -DEMBEDDB_SYSROOT=DIR; ctest runs the tests under qemu-aarch64.
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(EMBEDDB_TRIPLET aarch64-linux-gnu)
set(EMBEDDB_QEMU qemu-aarch64)
include(${CMAKE_CURRENT_LIST_DIR}/linux-gnu-cross.cmake)
