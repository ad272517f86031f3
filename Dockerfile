# loopscope-server image. Mirrors scripts/deps.sh (Debian packages) and scripts/run.sh (build).
# Unbuilt on the development machines (no Docker engine there): keep in step with scripts/deps.sh.
FROM debian:12-slim AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config libmicrohttpd-dev libsqlite3-dev libcjson-dev check \
      libcurl4-openssl-dev zlib1g-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DLOOPSCOPE_BENCH=OFF \
 && cmake --build build -j"$(nproc)" --target loopscope-server

FROM debian:12-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libmicrohttpd12 libsqlite3-0 libcjson1 zlib1g && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/server/loopscope-server /usr/local/bin/loopscope-server
VOLUME /data
EXPOSE 7878
# Beyond loopback the server requires --token; pass it with `docker run ... --token SECRET`.
ENTRYPOINT ["loopscope-server", "--listen", "0.0.0.0:7878", "--db", "/data/loopscope.db"]
