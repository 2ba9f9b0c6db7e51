# Sluice: one self-contained binary in a small non-root image.
#   docker build -t sluice .
#   docker run -p 1935:1935 -p 8080:8080 -p 40000-40100:40000-40100/udp \
#     -v sluice-data:/data sluice --public-ip 203.0.113.10

# 1) Build: the official Deno image compiles main.ts with everything embedded
#    (demo page, WASM codec module, npm dependencies).
FROM denoland/deno:debian-2.9.6 AS build
WORKDIR /src
COPY deno.json deno.lock ./
COPY main.ts mod.ts ./
COPY lib ./lib
RUN deno install --frozen --entrypoint main.ts \
 && deno compile --frozen --allow-net --allow-env --allow-sys=networkInterfaces --allow-read \
      --allow-write=./sluice-data,/data --output /out/sluice main.ts \
 && /out/sluice --help > /dev/null \
 && mkdir -p /out/data

# 2) Run: distroless glibc base, no shell, non-root.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/sluice /usr/local/bin/sluice
COPY --from=build --chown=nonroot:nonroot /out/data /data
ENV SLUICE_DATA_DIR=/data \
    SLUICE_UDP_PORTS=40000-40100 \
    SLUICE_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 1935/tcp 8080/tcp 40000-40100/udp
USER nonroot
HEALTHCHECK --interval=15s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/sluice", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/sluice"]
