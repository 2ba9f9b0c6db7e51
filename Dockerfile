# Sluice: one self-contained binary plus the small native transcode shim, non-root.
#   docker build -t sluice .
#   docker run -p 1935:1935 -p 8080:8080 -p 40000-40999:40000-40999/udp \
#     -v sluice-data:/data sluice --public-ip 203.0.113.10

# 1) Build: the official Deno image compiles main.ts with everything embedded
#    (demo page, WASM audio codec and video fallback, npm dependencies; the Workers'
#    modules through --include, which compile does not find on its own); gcc builds
#    the FFI shim of the video transcoder (FFmpeg libavcodec + openh264).
FROM denoland/deno:debian-2.9.6 AS build
RUN apt-get -o DPkg::Lock::Timeout=600 update \
 && apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends \
      gcc libc6-dev libavcodec-dev libavutil-dev libswscale-dev libopenh264-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY deno.json deno.lock ./
COPY main.ts mod.ts ./
COPY lib ./lib
COPY native ./native
RUN native/build.sh --force /out \
 && deno install --frozen --entrypoint main.ts \
 && deno compile --frozen --include lib/codec/audio_worker.ts --include lib/codec/video/worker.ts \
      --allow-net --allow-ffi --allow-env --allow-sys=networkInterfaces \
      --allow-read --allow-write=./sluice-data,/data --output /out/sluice main.ts \
 && /out/sluice --help > /dev/null \
 && mkdir -p /out/data

# 2) Run: Debian slim with only the run-time libraries of the transcoder.
FROM debian:12-slim
RUN apt-get -o DPkg::Lock::Timeout=600 update \
 && apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends \
      libavcodec59 libavutil57 libswscale6 libopenh264-7 libssl3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data sluice
# The native libraries sit beside the binary, where Sluice looks for them.
COPY --from=build /out/sluice /out/libsluice_transcode.so /out/libsluice_fanout.so /usr/local/bin/
COPY --from=build --chown=sluice:sluice /out/data /data
ENV SLUICE_DATA_DIR=/data \
    SLUICE_UDP_PORTS=40000-40999 \
    SLUICE_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 1935/tcp 8080/tcp 40000-40999/udp
USER sluice
HEALTHCHECK --interval=15s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/sluice", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/sluice"]
