#!/usr/bin/env bash
# Builds native/build/libsluice_transcode.so, the FFI shim behind lib/codec/video/
# (FFmpeg libavcodec decode + openh264 encode). Idempotent: does nothing when the
# library is newer than its source and this script.
#
# Needs (Debian 12): gcc libc6-dev libavcodec-dev libavutil-dev libswscale-dev libopenh264-dev
# At run time only the libraries: libavcodec59 libavutil57 libswscale6 libopenh264-7
#
# Usage: native/build.sh [--force] [OUTPUT.so]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
force=0
if [ "${1:-}" = "--force" ]; then force=1; shift; fi
out="${1:-$here/build/libsluice_transcode.so}"
src="$here/transcode_shim.c"

if [ "$force" = 0 ] && [ -f "$out" ] && [ "$out" -nt "$src" ] && [ "$out" -nt "$0" ]; then
  exit 0
fi
mkdir -p "$(dirname "$out")"
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
# -fvisibility=hidden: only the sluice_tc_* functions are exported.
${CC:-gcc} -std=gnu11 -O2 -fPIC -shared -fvisibility=hidden -Wall -Wextra -Wno-unused-parameter \
  -Wl,--as-needed -Wl,-z,defs -o "$tmp" "$src" \
  -lavcodec -lavutil -lswscale -lopenh264
mv -f "$tmp" "$out"
echo "built $out"
