# Shared by tools/build-codec-wasm.sh and tools/build-video-wasm.sh (sourced, not run):
# the pinned FFmpeg source, the emscripten toolchain, the build directory and FFmpeg's
# configure + make. Each script sets ROOT, sources this, calls parse_args, then these.

LIBAV_JS_VERSION=6.10.9
FFMPEG_VERSION=9.0
FFMPEG_TARBALL=ffmpeg-${FFMPEG_VERSION}.tar.xz
FFMPEG_SHA256=7f607a00dd0d28a729d5a4811205812eef01cf6ef6155025febb6f36a9062d52
# The emscripten the committed modules were built with (Debian 12 package 3.1.6~dfsg-5).
EMSCRIPTEN_VERSION=3.1.6
# Every library: -O3, and WebAssembly SIMD (V8 has had it since 9.1; Deno 2 always).
COMMON_CFLAGS="-O3 -msimd128"
JOBS=${JOBS:-$(nproc)}
START=$(date +%s)

step() { echo "::: $* ($(date +%T))"; }

# parse_args DEFAULT_OUT [--out FILE] [--keep]: sets OUT and KEEP.
parse_args() {
  OUT="$1"
  KEEP=0
  shift
  while [ $# -gt 0 ]; do
    case "$1" in
      --out) OUT="$(realpath -m "$2")"; shift 2 ;;
      --keep) KEEP=1; shift ;;
      *) echo "usage: $0 [--out FILE] [--keep]" >&2; exit 2 ;;
    esac
  done
}

# ensure_emscripten [extra apt packages]: installs Debian's emscripten when emcc is missing,
# exports NODE_PATH (Debian's emcc finds acorn & co. only through it), sets EMCC_VERSION.
ensure_emscripten() {
  if ! command -v emcc >/dev/null 2>&1; then
    step "apt-get install emscripten"
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get -o DPkg::Lock::Timeout=600 -q update
    $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -q emscripten make xz-utils npm "$@"
  fi
  export NODE_PATH="${NODE_PATH:-/usr/share/nodejs}"
  EMCC_VERSION="$(emcc --version | sed -n 's/^emcc .* \([0-9][0-9.]*\) .*/\1/p' | head -1)"
  if [ "$EMCC_VERSION" != "$EMSCRIPTEN_VERSION" ]; then
    echo "warning: emcc $EMCC_VERSION, the committed modules were built with $EMSCRIPTEN_VERSION" >&2
  fi
}

# enter_build_dir PREFIX: cd into $BUILD_DIR (a fresh temporary one, removed on exit
# unless --keep, when unset); sets PREFIX for the libraries' install.
enter_build_dir() {
  if [ -z "${BUILD_DIR:-}" ]; then
    BUILD_DIR="$(mktemp -d "/tmp/$1.XXXXXX")"
    [ "$KEEP" = 1 ] || trap 'rm -rf "$BUILD_DIR"' EXIT
  fi
  mkdir -p "$BUILD_DIR"
  cd "$BUILD_DIR"
  PREFIX="$BUILD_DIR/prefix"
}

# npm_pack_sources TARBALL...: extracts package/sources/TARBALL of npm libav.js (the
# FFmpeg tarball is always among them), never into the repository.
npm_pack_sources() {
  step "npm pack libav.js@$LIBAV_JS_VERSION into $BUILD_DIR"
  rm -rf package ./*.tgz
  local tgz files=()
  for f in "$@"; do files+=("package/sources/$f"); done
  tgz="$(npm pack --silent "libav.js@$LIBAV_JS_VERSION" | tail -1)"
  tar xzf "$tgz" "package/sources/$FFMPEG_TARBALL" "${files[@]}"
  rm -f "$tgz"
  echo "$FFMPEG_SHA256  package/sources/$FFMPEG_TARBALL" | sha256sum -c
  rm -rf "ffmpeg-$FFMPEG_VERSION"
  tar xJf "package/sources/$FFMPEG_TARBALL"
}

# build_ffmpeg DECODER "ENABLE FLAGS" "DISABLE FLAGS": FFmpeg with everything off except
# what the flags enable, into $PREFIX; checks that DECODER is enabled. Skipped when ffmpeg.ok
# exists. (The flags' order is kept as it was: FFmpeg records its configure line in the module.)
build_ffmpeg() {
  [ -f ffmpeg.ok ] && return 0
  local decoder="$1" enable="$2" disable="$3"
  step "FFmpeg $FFMPEG_VERSION: configure"
  rm -rf ffmpeg-build && mkdir ffmpeg-build
  (cd ffmpeg-build && "../ffmpeg-$FFMPEG_VERSION/configure" \
    --prefix="$PREFIX" --cc=emcc --cxx=em++ --ar=emar --ranlib=emranlib --nm=emnm \
    --target-os=none --arch=x86_32 --enable-cross-compile --disable-asm --disable-inline-asm \
    --disable-x86asm --disable-runtime-cpudetect --disable-autodetect --disable-pthreads \
    --disable-network --disable-debug --disable-doc --disable-programs --pkg-config=false \
    --disable-everything $enable --disable-avformat --disable-avfilter --disable-avdevice \
    $disable --extra-cflags="$COMMON_CFLAGS" >configure.log 2>&1) ||
    { tail -30 ffmpeg-build/configure.log; return 1; }
  grep -q "^$decoder$" <(sed -n '/^Enabled decoders:/,/^$/p' ffmpeg-build/configure.log | tr -s ' ' '\n') ||
    { echo "FFmpeg configure did not enable the $decoder decoder" >&2; return 1; }
  step "FFmpeg $FFMPEG_VERSION: make -j$JOBS"
  make -C ffmpeg-build -j"$JOBS" >ffmpeg-build/make.log 2>&1 || { tail -30 ffmpeg-build/make.log; return 1; }
  make -C ffmpeg-build install >>ffmpeg-build/make.log 2>&1
  touch ffmpeg.ok
}

# finish OUT BUILT: copies the linked module into place and says what was made.
finish() {
  mkdir -p "$(dirname "$1")"
  cp "$2" "$1"
  step "done in $(($(date +%s) - START)) s: $1 ($(stat -c %s "$1") bytes)"
  sha256sum "$1"
  [ "$KEEP" = 0 ] || echo "build directory kept: $BUILD_DIR"
}
