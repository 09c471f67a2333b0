#!/usr/bin/env bash
# Fetches the base model's training photos (sources.tsv) from Debian 12's wallpaper packages and prepares them:
# each file is checked against its SHA-256, then halved with MATLAB bicubic (antialiased, `mcir-host degrade`), which
# removes JPEG block artefacts and gives DIV2K-like detail density. Output: data/base-x2/train/*.png (not committed).
#   bash data/base-x2/fetch.sh [--debs DIR]   # DIR: already downloaded .deb files (offline); default: apt-get download
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
debs=""
if [[ "${1:-}" == "--debs" ]]; then debs="$(cd "$2" && pwd)"; fi
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
packages=(mate-backgrounds=1.26.0-1 ukui-wallpapers=20.04.3-1.1 lomiri-wallpapers=20.04.0-2)
cd "$work"
for p in "${packages[@]}"; do
  name="${p%%=*}"
  if [[ -n "$debs" ]]; then cp "$debs/${name}"_*.deb . ; else apt-get download "$p"; fi
  mkdir -p "x/$name"; dpkg-deb -x "${name}"_*.deb "x/$name"
done
mkdir -p raw
tail -n +2 "$here/sources.tsv" | while IFS=$'\t' read -r sha package path licence; do
  src="x/$package$path"
  echo "$sha  $src" | sha256sum --check --quiet || { echo "error: $package$path: SHA-256 differs from sources.tsv" >&2; exit 1; }
  cp "$src" "raw/$(basename "$path")"
done
rm -rf "$here/train.tmp"; mkdir -p "$here/train.tmp"
dotnet run --project "$root/src/Mcir.Host" -c Release -- degrade bicubic --scale 2 --input raw --output "$here/train.tmp"
rm -rf "$here/train"; mv "$here/train.tmp" "$here/train"
echo "$(ls "$here/train" | wc -l) training photos in $here/train"
