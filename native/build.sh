#!/usr/bin/env bash
# Builds the FFI libraries in native/build/:
#   libsluice_transcode.so  the video transcoder behind lib/codec/video/
#                           (FFmpeg libavcodec decode + openh264 encode)
#   libsluice_fanout.so     the media send path behind lib/webrtc/native/
#                           (UDP sockets + SRTP over OpenSSL libcrypto)
# Idempotent: does nothing for a library newer than its source and this script.
#
# Needs (Debian 12): gcc libc6-dev libavcodec-dev libavutil-dev libswscale-dev libopenh264-dev
#                    libssl-dev
# At run time only the libraries: libavcodec59 libavutil57 libswscale6 libopenh264-7 libssl3
#
# Usage: native/build.sh [--force] [OUTPUT_DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
force=0
if [ "${1:-}" = "--force" ]; then force=1; shift; fi
dir="${1:-$here/build}"
mkdir -p "$dir"
tmp=""
trap 'rm -f "$tmp"' EXIT

# build NAME SOURCE LIBS...: compiles SOURCE into $dir/NAME unless it is up to date.
build() {
  local out="$dir/$1" src="$here/$2"
  shift 2
  if [ "$force" = 0 ] && [ -f "$out" ] && [ "$out" -nt "$src" ] && [ "$out" -nt "$0" ]; then
    return 0
  fi
  tmp="$out.tmp.$$"
  # -fvisibility=hidden: only the functions marked for export are visible.
  if ! ${CC:-gcc} -std=gnu11 -O2 -fPIC -shared -fvisibility=hidden -Wall -Wextra -Wno-unused-parameter \
    -Wl,--as-needed -Wl,-z,defs -o "$tmp" "$src" "$@"; then
    echo "cannot build $1: see the packages above (native/README.md)" >&2
    return 1
  fi
  mv -f "$tmp" "$out"
  echo "built $out"
}

# Each library on its own: one whose packages are missing does not stop the other.
failed=0
build libsluice_transcode.so transcode_shim.c -lavcodec -lavutil -lswscale -lopenh264 || failed=1
build libsluice_fanout.so fanout.c -lcrypto -lpthread || failed=1
exit "$failed"
