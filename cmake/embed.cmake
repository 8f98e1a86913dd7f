# Turns a file into a C byte array at build time:
#   cmake -DIN=file -DOUT=out.c -DVAR=symbol -P cmake/embed.cmake
# defines `const char VAR[]` (NUL-terminated) and `const size_t VAR_len`.
file(READ ${IN} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," arr "${hex}")
file(WRITE ${OUT} "/* generated from ${IN}; do not edit */\n#include <stddef.h>\nconst char ${VAR}[] = {${arr} 0x00};\nconst size_t ${VAR}_len = sizeof(${VAR}) - 1;\n")
