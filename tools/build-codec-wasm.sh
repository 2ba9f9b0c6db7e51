#!/usr/bin/env bash
# Builds lib/codec/wasm/aac_opus.mjs: FFmpeg's native AAC decoder + libswresample +
# libopus + tools/codec-wasm/aac_opus.c, compiled by Debian's emscripten into one
# single-file ES module (WebAssembly inlined as base64, no file read at run time).
#
# The sources are the FFmpeg and libopus tarballs npm's libav.js ships under sources/;
# their SHA-256 is pinned below and checked before anything is built.
#
# Usage: tools/build-codec-wasm.sh [--out FILE] [--keep]
#   --out FILE  write the module there instead of lib/codec/wasm/aac_opus.mjs
#   --keep      keep the build directory (printed at the end)
# Env: BUILD_DIR=dir  build there (reuses finished steps: delete it for a clean build)
#      JOBS=n         parallel compile jobs (default: nproc)
# Takes 10–20 min on 2 cores, most of it FFmpeg's configure (each probe runs emcc).
set -euo pipefail

LIBAV_JS_VERSION=6.10.9
FFMPEG_VERSION=9.0
FFMPEG_TARBALL=ffmpeg-${FFMPEG_VERSION}.tar.xz
FFMPEG_SHA256=7f607a00dd0d28a729d5a4811205812eef01cf6ef6155025febb6f36a9062d52
OPUS_VERSION=1.6.1
OPUS_TARBALL=opus-${OPUS_VERSION}.tar.gz
OPUS_SHA256=6ffcb593207be92584df15b32466ed64bbec99109f007c82205f0194572411a1
# The emscripten the committed module was built with (Debian 12 package 3.1.6~dfsg-5).
EMSCRIPTEN_VERSION=3.1.6

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/lib/codec/wasm/aac_opus.mjs"
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
if ! command -v emcc >/dev/null 2>&1; then
  step "apt-get install emscripten"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get -o DPkg::Lock::Timeout=600 -q update
  $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -q emscripten make xz-utils npm
fi
# Debian's emcc finds its node modules (acorn, …) only through NODE_PATH.
export NODE_PATH="${NODE_PATH:-/usr/share/nodejs}"
EMCC_VERSION="$(emcc --version | sed -n 's/^emcc .* \([0-9][0-9.]*\) .*/\1/p' | head -1)"
if [ "$EMCC_VERSION" != "$EMSCRIPTEN_VERSION" ]; then
  echo "warning: emcc $EMCC_VERSION, the committed module was built with $EMSCRIPTEN_VERSION" >&2
fi

# --- sources ---------------------------------------------------------------------------
if [ -z "${BUILD_DIR:-}" ]; then
  BUILD_DIR="$(mktemp -d /tmp/sluice-codec-wasm.XXXXXX)"
  [ "$KEEP" = 1 ] || trap 'rm -rf "$BUILD_DIR"' EXIT
fi
mkdir -p "$BUILD_DIR"
cd "$BUILD_DIR"
if [ ! -f sources.ok ]; then
  step "npm pack libav.js@$LIBAV_JS_VERSION into $BUILD_DIR"
  rm -rf package ./*.tgz
  TGZ="$(npm pack --silent "libav.js@$LIBAV_JS_VERSION" | tail -1)"
  tar xzf "$TGZ" "package/sources/$FFMPEG_TARBALL" "package/sources/$OPUS_TARBALL"
  rm -f "$TGZ"
  (cd package/sources && sha256sum -c <<EOF
$FFMPEG_SHA256  $FFMPEG_TARBALL
$OPUS_SHA256  $OPUS_TARBALL
EOF
  )
  rm -rf "ffmpeg-$FFMPEG_VERSION" "opus-$OPUS_VERSION"
  tar xJf "package/sources/$FFMPEG_TARBALL"
  tar xzf "package/sources/$OPUS_TARBALL"
  touch sources.ok
fi
PREFIX="$BUILD_DIR/prefix"

# Both libraries: -O3, and WebAssembly SIMD (V8 has had it since 9.1; Deno 2 always).
COMMON_CFLAGS="-O3 -msimd128"

# --- FFmpeg: the aac decoder, libswresample, libavutil ---------------------------------
if [ ! -f ffmpeg.ok ]; then
  step "FFmpeg $FFMPEG_VERSION: configure"
  rm -rf ffmpeg-build && mkdir ffmpeg-build
  (cd ffmpeg-build && "../ffmpeg-$FFMPEG_VERSION/configure" \
    --prefix="$PREFIX" --cc=emcc --cxx=em++ --ar=emar --ranlib=emranlib --nm=emnm \
    --target-os=none --arch=x86_32 --enable-cross-compile --disable-asm --disable-inline-asm \
    --disable-x86asm --disable-runtime-cpudetect --disable-autodetect --disable-pthreads \
    --disable-network --disable-debug --disable-doc --disable-programs --pkg-config=false \
    --disable-everything --enable-decoder=aac --enable-swresample \
    --disable-avformat --disable-avfilter --disable-avdevice --disable-swscale \
    --extra-cflags="$COMMON_CFLAGS" >configure.log 2>&1) ||
    { tail -30 ffmpeg-build/configure.log; exit 1; }
  grep -q "^aac$" <(sed -n '/^Enabled decoders:/,/^$/p' ffmpeg-build/configure.log | tr -s ' ' '\n') ||
    { echo "FFmpeg configure did not enable the aac decoder" >&2; exit 1; }
  step "FFmpeg $FFMPEG_VERSION: make -j$JOBS"
  make -C ffmpeg-build -j"$JOBS" >ffmpeg-build/make.log 2>&1 || { tail -30 ffmpeg-build/make.log; exit 1; }
  make -C ffmpeg-build install >>ffmpeg-build/make.log 2>&1
  touch ffmpeg.ok
fi

# --- libopus: float, SSE intrinsics presumed (emscripten maps them onto WASM SIMD) ------
# Compiled straight from the source lists libopus ships (*_sources.mk) with a fixed
# config.h, instead of ./configure: it cannot enable x86 intrinsics for a wasm32 host, and
# those measured ≈ 25 % faster encoding than plain C (see lib/codec/wasm/README.md).
if [ ! -f opus.ok ]; then
  step "libopus $OPUS_VERSION: compile"
  OPUS_SRC="$BUILD_DIR/opus-$OPUS_VERSION"
  rm -rf opus-build && mkdir -p opus-build/obj
  cat >opus-build/config.h <<EOF
#define OPUS_BUILD 1
#define VAR_ARRAYS 1
#define HAVE_LRINT 1
#define HAVE_LRINTF 1
#define ENABLE_HARDENING 1
#define ENABLE_RES24 1
#define DISABLE_DEBUG_FLOAT 1
#define PACKAGE_VERSION "$OPUS_VERSION"
#define restrict __restrict
#define OPUS_X86_MAY_HAVE_SSE 1
#define OPUS_X86_PRESUME_SSE 1
#define OPUS_X86_MAY_HAVE_SSE2 1
#define OPUS_X86_PRESUME_SSE2 1
#define OPUS_X86_MAY_HAVE_SSE4_1 1
#define OPUS_X86_PRESUME_SSE4_1 1
EOF
  LISTS="CELT_SOURCES CELT_SOURCES_SSE CELT_SOURCES_SSE2 CELT_SOURCES_SSE4_1
         SILK_SOURCES SILK_SOURCES_SSE4_1 SILK_SOURCES_FLOAT OPUS_SOURCES OPUS_SOURCES_FLOAT"
  FILES=""
  for list in $LISTS; do
    FILES="$FILES $(make -s -C "$OPUS_SRC" -f celt_sources.mk -f silk_sources.mk \
      -f opus_sources.mk --eval "print-list: ; @echo \$($list)" print-list)"
  done
  export OPUS_SRC COMMON_CFLAGS BUILD_DIR
  # shellcheck disable=SC2016
  printf '%s\n' $FILES | xargs -P "$JOBS" -I{} sh -c '
    obj="$BUILD_DIR/opus-build/obj/$(echo "$1" | tr / _).o"
    cd "$OPUS_SRC" && emcc -c $COMMON_CFLAGS -msse4.1 -DHAVE_CONFIG_H \
      -include "$BUILD_DIR/opus-build/config.h" -I"$BUILD_DIR/opus-build" \
      -I. -Iinclude -Icelt -Isilk -Isilk/float -Isrc "$1" -o "$obj"' _ {}
  emar rcs opus-build/libopus.a opus-build/obj/*.o
  mkdir -p "$PREFIX/include/opus" "$PREFIX/lib"
  cp "$OPUS_SRC"/include/*.h "$PREFIX/include/opus/"
  cp opus-build/libopus.a "$PREFIX/lib/"
  touch opus.ok
fi

# --- link ------------------------------------------------------------------------------
step "link $OUT"
EXPORTS="_malloc,_free,_aot_open,_aot_decode,_aot_encode,_aot_read_pcm,_aot_pending"
EXPORTS="$EXPORTS,_aot_set_packet_loss,_aot_set_bitrate,_aot_input_sample_rate"
EXPORTS="$EXPORTS,_aot_input_channels,_aot_frame_samples,_aot_close"
EXPORTS="$EXPORTS,_aod_open,_aod_decode,_aod_close"
cat >header.js <<EOF
// GENERATED by tools/build-codec-wasm.sh; do not edit. See lib/codec/wasm/README.md.
// FFmpeg $FFMPEG_VERSION (aac decoder, libswresample, libavutil; LGPL-2.1-or-later),
// libopus $OPUS_VERSION (BSD-3-Clause), tools/codec-wasm/aac_opus.c; emscripten $EMCC_VERSION.
// Sources: npm libav.js@$LIBAV_JS_VERSION sources/$FFMPEG_TARBALL sha256 $FFMPEG_SHA256,
//          sources/$OPUS_TARBALL sha256 $OPUS_SHA256.
EOF
emcc -O3 -msimd128 "$ROOT/tools/codec-wasm/aac_opus.c" \
  -I"$PREFIX/include" -I"$PREFIX/include/opus" \
  "$PREFIX/lib/libavcodec.a" "$PREFIX/lib/libswresample.a" "$PREFIX/lib/libavutil.a" \
  "$PREFIX/lib/libopus.a" \
  -sSINGLE_FILE=1 -sMODULARIZE=1 -sEXPORT_ES6=1 -sENVIRONMENT=web \
  -sEXPORT_NAME=createAacOpusModule -sALLOW_MEMORY_GROWTH=1 -sFILESYSTEM=0 \
  -sDYNAMIC_EXECUTION=0 -sEXPORTED_FUNCTIONS="$EXPORTS" \
  --extern-pre-js header.js -o "$BUILD_DIR/aac_opus.mjs"
mkdir -p "$(dirname "$OUT")"
cp "$BUILD_DIR/aac_opus.mjs" "$OUT"

step "done in $(($(date +%s) - START)) s: $OUT ($(stat -c %s "$OUT") bytes)"
sha256sum "$OUT"
[ "$KEEP" = 0 ] || echo "build directory kept: $BUILD_DIR"
