#!/usr/bin/env bash
# Builds lib/codec/wasm/h264_transcode.mjs, the portable fallback of the video
# transcoder: native/transcode_shim.c (the very file the native library is built
# from) + FFmpeg's h264 decoder and libswscale + Cisco's openh264 encoder, compiled
# by Debian's emscripten into one single-file ES module (WebAssembly inlined).
#
# Sources, each checked against a pinned SHA-256 before anything is built:
#   FFmpeg: the tarball npm's libav.js ships under sources/ (as tools/build-codec-wasm.sh)
#   openh264: Debian's source package (orig + debian tarballs from deb.debian.org,
#             Debian's patches applied, among them the CVE-2025-27091 fix)
#
# Usage: tools/build-video-wasm.sh [--out FILE] [--keep]
# Env:   BUILD_DIR=dir  build there (reuses finished steps: delete it for a clean build)
#        JOBS=n         parallel compile jobs (default: nproc)
# Takes 15–25 min on 2 cores, most of it FFmpeg's configure (each probe runs emcc).
set -euo pipefail

LIBAV_JS_VERSION=6.10.9
FFMPEG_VERSION=9.0
FFMPEG_TARBALL=ffmpeg-${FFMPEG_VERSION}.tar.xz
FFMPEG_SHA256=7f607a00dd0d28a729d5a4811205812eef01cf6ef6155025febb6f36a9062d52
OPENH264_VERSION=2.3.1
OPENH264_DEBIAN=2.3.1+dfsg-3+deb12u2
OPENH264_ORIG=openh264_${OPENH264_VERSION}+dfsg.orig.tar.xz
OPENH264_ORIG_SHA256=87124d0eb5d86ea78c59bab916ecdc3d9dfa752ce6bf73a609bbb98db7d96383
OPENH264_DEBIAN_TARBALL=openh264_${OPENH264_DEBIAN}.debian.tar.xz
OPENH264_DEBIAN_SHA256=8d749166ec936dd757eed56a3157167bee5ab95511d5726cc2d87ffca2069bb0
DEBIAN_POOL=${DEBIAN_POOL:-http://deb.debian.org/debian/pool/main/o/openh264}
# The emscripten the committed module was built with (Debian 12 package 3.1.6~dfsg-5).
EMSCRIPTEN_VERSION=3.1.6

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/lib/codec/wasm/h264_transcode.mjs"
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$(realpath -m "$2")"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    *) echo "usage: $0 [--out FILE] [--keep]" >&2; exit 2 ;;
  esac
done
JOBS=${JOBS:-$(nproc)}
START=$(date +%s)
step() { echo "::: $* ($(date +%T))"; }

# --- toolchain -------------------------------------------------------------------------
if ! command -v emcc >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1; then
  step "apt-get install emscripten"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get -o DPkg::Lock::Timeout=600 -q update
  $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -q emscripten make xz-utils npm curl patch
fi
export NODE_PATH="${NODE_PATH:-/usr/share/nodejs}"
EMCC_VERSION="$(emcc --version | sed -n 's/^emcc .* \([0-9][0-9.]*\) .*/\1/p' | head -1)"
if [ "$EMCC_VERSION" != "$EMSCRIPTEN_VERSION" ]; then
  echo "warning: emcc $EMCC_VERSION, the committed module was built with $EMSCRIPTEN_VERSION" >&2
fi

# --- sources ---------------------------------------------------------------------------
if [ -z "${BUILD_DIR:-}" ]; then
  BUILD_DIR="$(mktemp -d /tmp/sluice-video-wasm.XXXXXX)"
  [ "$KEEP" = 1 ] || trap 'rm -rf "$BUILD_DIR"' EXIT
fi
mkdir -p "$BUILD_DIR"
cd "$BUILD_DIR"
if [ ! -f sources.ok ]; then
  step "npm pack libav.js@$LIBAV_JS_VERSION, download openh264 $OPENH264_DEBIAN"
  rm -rf package ./*.tgz debian "openh264-$OPENH264_VERSION" "ffmpeg-$FFMPEG_VERSION"
  TGZ="$(npm pack --silent "libav.js@$LIBAV_JS_VERSION" | tail -1)"
  tar xzf "$TGZ" "package/sources/$FFMPEG_TARBALL"
  rm -f "$TGZ"
  curl -fsSLO "$DEBIAN_POOL/$OPENH264_ORIG"
  curl -fsSLO "$DEBIAN_POOL/$OPENH264_DEBIAN_TARBALL"
  sha256sum -c <<EOF
$FFMPEG_SHA256  package/sources/$FFMPEG_TARBALL
$OPENH264_ORIG_SHA256  $OPENH264_ORIG
$OPENH264_DEBIAN_SHA256  $OPENH264_DEBIAN_TARBALL
EOF
  tar xJf "package/sources/$FFMPEG_TARBALL"
  tar xJf "$OPENH264_ORIG"
  tar xJf "$OPENH264_DEBIAN_TARBALL"
  while read -r patch; do
    case "$patch" in ''|'#'*) continue ;; esac
    patch -d "openh264-$OPENH264_VERSION" -p1 -s <"debian/patches/$patch"
  done <debian/patches/series
  touch sources.ok
fi
PREFIX="$BUILD_DIR/prefix"
COMMON_CFLAGS="-O3 -msimd128"

# --- FFmpeg: the h264 decoder, libswscale, libavutil ------------------------------------
if [ ! -f ffmpeg.ok ]; then
  step "FFmpeg $FFMPEG_VERSION: configure"
  rm -rf ffmpeg-build && mkdir ffmpeg-build
  (cd ffmpeg-build && "../ffmpeg-$FFMPEG_VERSION/configure" \
    --prefix="$PREFIX" --cc=emcc --cxx=em++ --ar=emar --ranlib=emranlib --nm=emnm \
    --target-os=none --arch=x86_32 --enable-cross-compile --disable-asm --disable-inline-asm \
    --disable-x86asm --disable-runtime-cpudetect --disable-autodetect --disable-pthreads \
    --disable-network --disable-debug --disable-doc --disable-programs --pkg-config=false \
    --disable-everything --enable-decoder=h264 --enable-swscale \
    --disable-avformat --disable-avfilter --disable-avdevice --disable-swresample \
    --extra-cflags="$COMMON_CFLAGS" >configure.log 2>&1) ||
    { tail -30 ffmpeg-build/configure.log; exit 1; }
  grep -q "^h264$" <(sed -n '/^Enabled decoders:/,/^$/p' ffmpeg-build/configure.log | tr -s ' ' '\n') ||
    { echo "FFmpeg configure did not enable the h264 decoder" >&2; exit 1; }
  step "FFmpeg $FFMPEG_VERSION: make -j$JOBS"
  make -C ffmpeg-build -j"$JOBS" >ffmpeg-build/make.log 2>&1 || { tail -30 ffmpeg-build/make.log; exit 1; }
  make -C ffmpeg-build install >>ffmpeg-build/make.log 2>&1
  touch ffmpeg.ok
fi

# --- openh264: the encoder library, plain C++ (no asm) ----------------------------------
if [ ! -f openh264.ok ]; then
  step "openh264 $OPENH264_VERSION: make -j$JOBS"
  # Its Linux flavour adds -fstack-protector-all, whose guard emscripten's libc lacks; in
  # WebAssembly return addresses are not in linear memory, so the canary guards nothing.
  sed -i 's/^CFLAGS += -fstack-protector-all$//' "openh264-$OPENH264_VERSION/build/platform-linux.mk"
  make -C "openh264-$OPENH264_VERSION" clean >/dev/null 2>&1 || true
  make -C "openh264-$OPENH264_VERSION" -j"$JOBS" OS=linux ARCH=wasm32 USE_ASM=No \
    CC=emcc CXX=em++ AR=emar CFLAGS_OPT="$COMMON_CFLAGS" libopenh264.a \
    >openh264.log 2>&1 || { tail -30 openh264.log; exit 1; }
  mkdir -p "$PREFIX/include/wels" "$PREFIX/lib"
  cp "openh264-$OPENH264_VERSION"/codec/api/wels/*.h "$PREFIX/include/wels/"
  cp "openh264-$OPENH264_VERSION/libopenh264.a" "$PREFIX/lib/"
  touch openh264.ok
fi

# --- link ------------------------------------------------------------------------------
step "link $OUT"
EXPORTS="_malloc,_free"
for fn in abi_version create set_extradata push flush force_idr catch_up next_size pop stats \
  last_error destroy; do
  EXPORTS="$EXPORTS,_sluice_tc_$fn"
done
cat >header.js <<EOF
// GENERATED by tools/build-video-wasm.sh; do not edit. See lib/codec/wasm/README.md.
// native/transcode_shim.c with FFmpeg $FFMPEG_VERSION (h264 decoder, libswscale, libavutil;
// LGPL-2.1-or-later) and openh264 $OPENH264_VERSION (BSD-2-Clause, Debian $OPENH264_DEBIAN);
// emscripten $EMCC_VERSION.
// Sources: npm libav.js@$LIBAV_JS_VERSION sources/$FFMPEG_TARBALL sha256 $FFMPEG_SHA256,
//          $OPENH264_ORIG sha256 $OPENH264_ORIG_SHA256.
EOF
# emscripten 3.1.6 without threads lacks two pthread attribute setters openh264 calls
# while it prepares (unused) worker threads: stub them out.
cat >pthread_stubs.c <<'EOF'
#include <pthread.h>
int pthread_attr_setscope(pthread_attr_t *attr, int scope) { (void)attr; (void)scope; return 0; }
int pthread_attr_setschedpolicy(pthread_attr_t *attr, int policy) { (void)attr; (void)policy; return 0; }
EOF
emcc -O3 -msimd128 -c pthread_stubs.c -o pthread_stubs.o
emcc -O3 -msimd128 -std=gnu11 -c "$ROOT/native/transcode_shim.c" -I"$PREFIX/include" -o shim.o
em++ -O3 -msimd128 shim.o pthread_stubs.o \
  "$PREFIX/lib/libavcodec.a" "$PREFIX/lib/libswscale.a" "$PREFIX/lib/libavutil.a" \
  "$PREFIX/lib/libopenh264.a" \
  -sSINGLE_FILE=1 -sMODULARIZE=1 -sEXPORT_ES6=1 -sENVIRONMENT=web \
  -sEXPORT_NAME=createH264TranscodeModule -sALLOW_MEMORY_GROWTH=1 -sINITIAL_MEMORY=67108864 \
  -sFILESYSTEM=0 -sDYNAMIC_EXECUTION=0 -sWASM_BIGINT=1 -sEXPORTED_FUNCTIONS="$EXPORTS" \
  --extern-pre-js header.js -o "$BUILD_DIR/h264_transcode.mjs"
mkdir -p "$(dirname "$OUT")"
cp "$BUILD_DIR/h264_transcode.mjs" "$OUT"

step "done in $(($(date +%s) - START)) s: $OUT ($(stat -c %s "$OUT") bytes)"
sha256sum "$OUT"
[ "$KEEP" = 0 ] || echo "build directory kept: $BUILD_DIR"
