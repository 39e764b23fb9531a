# Shared part of the ARM toolchain files: include()d by aarch64-linux-gnu.cmake
# and arm-linux-gnueabihf.cmake after they set EMBEDDB_TRIPLET and
# EMBEDDB_QEMU. Not a toolchain file on its own.
#
# Two ways to find the target's libraries:
#   - Debian multiarch (default, EMBEDDB_SYSROOT empty): the cross gcc from
#     gcc-<triplet>, libraries from lib*-dev:<arch> in /usr/lib/<triplet>.
#   - A sysroot (-DEMBEDDB_SYSROOT=DIR): a Yocto SDK's or Buildroot's
#     staging sysroot, or one made by toolchains/debian-sysroot.sh.
# EMBEDDB_CROSS_PREFIX names the compiler (default <triplet>-, so
# <triplet>-gcc); point it at a Yocto or Buildroot toolchain's prefix.
set(CMAKE_SYSTEM_NAME Linux)

set(EMBEDDB_SYSROOT "" CACHE PATH "Target sysroot; empty: Debian multiarch under /usr")
set(EMBEDDB_CROSS_PREFIX "${EMBEDDB_TRIPLET}-" CACHE STRING "Cross tool prefix (PREFIXgcc)")
# try_compile projects re-read this file: hand them the same choices.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES EMBEDDB_SYSROOT EMBEDDB_CROSS_PREFIX)

set(CMAKE_C_COMPILER "${EMBEDDB_CROSS_PREFIX}gcc")
set(CMAKE_LIBRARY_ARCHITECTURE "${EMBEDDB_TRIPLET}")

if(EMBEDDB_SYSROOT)
  set(CMAKE_SYSROOT "${EMBEDDB_SYSROOT}")
  set(CMAKE_FIND_ROOT_PATH "${EMBEDDB_SYSROOT}")
  set(ENV{PKG_CONFIG_SYSROOT_DIR} "${EMBEDDB_SYSROOT}")
  set(ENV{PKG_CONFIG_LIBDIR} "${EMBEDDB_SYSROOT}/usr/lib/${EMBEDDB_TRIPLET}/pkgconfig:${EMBEDDB_SYSROOT}/usr/lib/pkgconfig:${EMBEDDB_SYSROOT}/usr/share/pkgconfig")
  set(_embeddb_qemu_args "-L;${EMBEDDB_SYSROOT}")
else()
  # Multiarch: the target's files live beside the host's under /usr.
  set(CMAKE_FIND_ROOT_PATH /usr/${EMBEDDB_TRIPLET} /)
  set(ENV{PKG_CONFIG_SYSROOT_DIR} "")
  set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/${EMBEDDB_TRIPLET}/pkgconfig:/usr/share/pkgconfig")
  # libc6:<arch> (pulled in by the lib*-dev:<arch> packages) puts the
  # target's loader where the binaries ask for it: qemu needs no -L here.
  # (qemu 7.2 with -L /usr/<triplet> hangs in fork(), so don't add one.)
  set(_embeddb_qemu_args "")
endif()

# Programs run on the build machine; everything linked comes from the target.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# ctest runs the target's test programs under qemu-user (Debian qemu-user);
# with a sysroot, -L points the target's dynamic loader into it.
find_program(EMBEDDB_QEMU_PROGRAM NAMES ${EMBEDDB_QEMU})
if(EMBEDDB_QEMU_PROGRAM)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${EMBEDDB_QEMU_PROGRAM};${_embeddb_qemu_args}")
endif()
