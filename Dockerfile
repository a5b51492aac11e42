# recstream on a slim Debian base: build stage with the -dev packages, runtime
# stage with only the shared libraries.
FROM debian:12-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config librdkafka-dev libhiredis-dev libmsgpack-dev \
      libopenblas-dev libinih-dev libjansson-dev libcmocka-dev libmicrohttpd-dev libxxhash-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j --target recstream

FROM debian:12-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      librdkafka1 libhiredis0.14 libmsgpackc2 libopenblas0 libinih1 libjansson4 libmicrohttpd12 libxxhash0 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/recstream /usr/local/bin/recstream
# Transparent huge pages for malloc: snapshots fork, and fork's pause grows with
# the number of page-table entries (docs/BENCHMARKS.md, "Snapshots").
ENV GLIBC_TUNABLES=glibc.malloc.hugetlb=1
COPY config/recstream.conf /etc/recstream/recstream.conf
VOLUME /var/lib/recstream
ENTRYPOINT ["recstream"]
CMD ["run", "-c", "/etc/recstream/recstream.conf"]
