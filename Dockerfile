# loopscope-server image. Mirrors scripts/deps.sh (its Debian build packages) and scripts/run.sh
# (the build); tests/integration/test_dockerfile.py checks that it stays in step with both.
# Unbuilt on the development machines (no Docker engine there). Build and run:
#   docker build -t loopscope .
#   docker run -d -p 7878:7878 -v loopscope-data:/data -e LOOPSCOPE_TOKEN=SECRET loopscope
FROM debian:12-slim AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config libmicrohttpd-dev libsqlite3-dev libcjson-dev check \
      libcurl4-openssl-dev zlib1g-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# .dockerignore keeps a host's build*/ (its CMakeCache.txt names the host's source directory and
# breaks `cmake -B build` here), venvs, node_modules, artifacts and databases out of the context.
COPY . .
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DLOOPSCOPE_BENCH=OFF \
 && cmake --build build -j"$(nproc)" --target loopscope-server

FROM debian:12-slim
# the shared libraries loopscope-server links (readelf -d; the test checks the list)
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libmicrohttpd12 libsqlite3-0 libcjson1 libcurl4 zlib1g ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/server/loopscope-server /usr/local/bin/loopscope-server
# A user of its own, owning the database directory: the server needs no privilege.
RUN useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin loopscope \
 && mkdir -p /data && chown loopscope:loopscope /data
USER loopscope
# The database (loopscope.db, its -wal and -shm files) lives here; mount a volume to keep it.
VOLUME /data
EXPOSE 7878
# GET /healthz answers {"ok":true,...} once the database is open; bash's /dev/tcp asks it, so the
# image needs no HTTP client.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/7878 && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && grep -q '\"ok\":true' <&3"]
# Beyond loopback the server requires a token: `-e LOOPSCOPE_TOKEN=SECRET` (or `--token SECRET`
# after the image name). Further options go there too, e.g. `--max-sessions 1000`.
ENTRYPOINT ["loopscope-server", "--listen", "0.0.0.0:7878", "--db", "/data/loopscope.db"]
