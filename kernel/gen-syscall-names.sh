#!/bin/sh
# Turns the host's asm/unistd_64.h into a C table of x86-64 syscall names indexed by number.
echo '/* Generated from '"$1"' by gen-syscall-names.sh: do not edit. */'
echo 'static const char *const syscall_names[] = {'
sed -n 's/^#define __NR_\([a-z0-9_]*\)[[:space:]]\+\([0-9]\+\).*/    [\2] = "\1",/p' "$1"
echo '};'
