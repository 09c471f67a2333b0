#!/usr/bin/env bash
# Prints "true" when the system libstdc++ lacks GLIBCXX_3.4.32 (needed by TorchSharp's libLibTorchSharp.so,
# built with GCC 13) and "false" otherwise. Checks the library the dynamic loader would pick, not a file name.
set -u
lib=$(/sbin/ldconfig -p 2>/dev/null | awk '/libstdc\+\+\.so\.6 .*x86-64/ {print $NF; exit}')
[ -n "$lib" ] || lib=$(/sbin/ldconfig -p 2>/dev/null | awk '/libstdc\+\+\.so\.6 / {print $NF; exit}')
if [ -z "$lib" ] || [ ! -r "$lib" ]; then echo false; exit 0; fi
if grep -qa 'GLIBCXX_3\.4\.32' "$(readlink -f "$lib")"; then echo false; else echo true; fi
