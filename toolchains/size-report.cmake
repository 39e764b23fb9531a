# Stripped sizes of the shipped programs, for the MinSizeRel size report:
#   cmake --build BUILD --target size-report
# Run by that target with -DSTRIP= -DARCH= -DLIMIT_KIB= -DPROGRAMS=a;b;
# fails when the agent is over LIMIT_KIB (0 = no limit).
foreach(program ${PROGRAMS})
  get_filename_component(name ${program} NAME)
  set(stripped ${program}.stripped)
  execute_process(COMMAND ${STRIP} -o ${stripped} ${program} RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "${STRIP} ${program} failed")
  endif()
  file(SIZE ${stripped} bytes)
  file(SIZE ${program} unstripped)
  math(EXPR kib "(${bytes} + 1023) / 1024")
  message(STATUS "size ${ARCH} ${name}: ${bytes} bytes stripped (${kib} KiB; ${unstripped} unstripped)")
  if(name STREQUAL "embeddb-agent" AND LIMIT_KIB GREATER 0 AND kib GREATER LIMIT_KIB)
    message(FATAL_ERROR "embeddb-agent is ${kib} KiB stripped on ${ARCH}: over the ${LIMIT_KIB} KiB budget")
  endif()
  file(REMOVE ${stripped})
endforeach()
