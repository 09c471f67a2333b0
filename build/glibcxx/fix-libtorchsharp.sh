#!/usr/bin/env bash
# Makes TorchSharp's libLibTorchSharp.so loadable where libstdc++ stops before GLIBCXX_3.4.32 (e.g. Debian 12).
# Only std::ios_base_library_init() needs that version; in GCC 13 it is an empty function. We provide it from a
# tiny shim library, drop the symbol's version, add the shim as NEEDED and mark the GLIBCXX_3.4.32 need weak.
# Usage: fix-libtorchsharp.sh <original libLibTorchSharp.so> <output folder>
set -euo pipefail
src="$1"; out="$2"; here="$(cd "$(dirname "$0")" && pwd)"
for tool in g++ patchelf python3; do
  command -v "$tool" >/dev/null || { echo "error MCIRBUILD01: '$tool' is needed to patch libLibTorchSharp.so for this system's libstdc++ (install it, e.g. apt-get install $tool)" >&2; exit 1; }
done
mkdir -p "$out"
if [[ -f "$out/libLibTorchSharp.so" && "$out/libLibTorchSharp.so" -nt "$src" && -f "$out/libTorchSharpGlibcxxShim.so" ]]; then exit 0; fi
tmp="$out/.libLibTorchSharp.so.$$"
trap 'rm -f "$tmp"' EXIT
g++ -O2 -shared -fPIC -o "$out/libTorchSharpGlibcxxShim.so" "$here/shim.cpp"
cp "$src" "$tmp"
chmod u+w "$tmp"
patchelf --clear-symbol-version _ZSt21ios_base_library_initv "$tmp"
patchelf --add-needed libTorchSharpGlibcxxShim.so "$tmp"
python3 "$here/weaken_verneed.py" "$tmp" GLIBCXX_3.4.32
mv "$tmp" "$out/libLibTorchSharp.so"
