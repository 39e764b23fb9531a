# Cross build for 32-bit ARM boards with hardware float (armv7, Debian armhf):
#   cmake -S . -B build-armhf --toolchain toolchains/arm-linux-gnueabihf.cmake
# Needs gcc-arm-linux-gnueabihf and the lib*-dev:armhf packages, or
# -DEMBEDDB_SYSROOT=DIR; ctest runs the tests under qemu-arm.
set(CMAKE_SYSTEM_PROCESSOR arm)
set(EMBEDDB_TRIPLET arm-linux-gnueabihf)
set(EMBEDDB_QEMU qemu-arm)
include(${CMAKE_CURRENT_LIST_DIR}/linux-gnu-cross.cmake)
