# The `cairn` image: the controller (`cairn up --runtime kubernetes`) and the
# program of ONNX model pods (`cairn model-server`).
#
#   docker build -t ghcr.io/cairn-ml/cairn:0.1.0 .
#
# Multi-stage: the build stage compiles the release binary; the final stage
# is a small Debian with CA certificates and an unprivileged user.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY xtask xtask
COPY plugins plugins
COPY specs specs
RUN cargo build --release --locked -p cairn \
    && strip target/release/cairn \
    && cp target/release/cairn /usr/local/bin/cairn

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 65532 --create-home --home-dir /var/lib/cairn cairn
COPY --from=build /usr/local/bin/cairn /usr/local/bin/cairn
USER 65532:65532
WORKDIR /var/lib/cairn
ENV CAIRN_DATA_DIR=/var/lib/cairn
EXPOSE 8080
ENTRYPOINT ["cairn"]
CMD ["--help"]
