# syntax=docker/dockerfile:1
# Images of Sluice, built from one builder stage:
#   docker build --target runtime  -t ghcr.io/sluice/sluice-runtime:0.1.0 .
#   docker build --target operator -t ghcr.io/sluice/sluice-operator:0.1.0 .
# (`make kind-images` does both.) Both run as a numeric non-root user (65532), need no writable
# root filesystem (runtime pods get an emptyDir at /tmp from the operator; a file sink writes to a
# volume the StreamJob's podTemplate mounts, e.g. the PVC at /data in
# manifests/examples/streamjob-windowed-counts.yaml) and have no ENTRYPOINT: the operator starts
# runtime pods with `args: [sluice-runtime, run, ...]`.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM docker.io/library/rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder
# C toolchain for rdkafka's bundled librdkafka build (cmake-build) and aws-lc/ring.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      cmake g++ make pkg-config libssl-dev libsasl2-dev zlib1g-dev libzstd-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Two builds, so that cargo's feature unification cannot pull the runtime's Kafka feature (and
# librdkafka) into the operator (the operator depends on sluice-crds and sluice-storage only).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p sluice-operator --bin sluice-operator \
 && cargo build --release --locked -p sluice-runtime --bin sluice-runtime \
 && mkdir -p /out \
 && cp target/release/sluice-operator target/release/sluice-runtime /out/

FROM docker.io/library/debian:${DEBIAN_RELEASE}-slim AS base
# Shared libraries the binaries may link dynamically (TLS, SASL for Kafka), CA certificates.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 libsasl2-2 zlib1g libzstd1 \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data /etc/sluice \
 && chown 65532:65532 /data
ENV RUST_LOG=info
USER 65532:65532
WORKDIR /data

FROM base AS operator
COPY --from=builder /out/sluice-operator /usr/local/bin/sluice-operator
EXPOSE 8080
CMD ["sluice-operator"]

FROM base AS runtime
COPY --from=builder /out/sluice-runtime /usr/local/bin/sluice-runtime
EXPOSE 9090
CMD ["sluice-runtime", "--help"]
