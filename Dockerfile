# leanpoint container image: build with the Rust toolchain, run on a slim
# Debian with only the binary and CA certificates, as a non-root user.
#
#   docker build -t leanpoint .
#   docker run --rm -p 5555:5555 leanpoint --lean-url http://node:5052
#
# The same image runs the simulated devnet: `leanpoint sim ...` (see
# docker-compose.yml).

FROM rust:1-bookworm AS build
WORKDIR /build
# Dependencies first, in their own layer: a source change rebuilds only
# leanpoint itself. The placeholder sources are removed before the real build.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src target/release/deps/leanpoint-* target/release/deps/libleanpoint-* \
        target/release/.fingerprint/leanpoint-* target/release/leanpoint
COPY src ./src
RUN cargo build --release --locked \
    && strip target/release/leanpoint \
    && target/release/leanpoint --version

FROM debian:bookworm-slim
# CA certificates for https upstreams; nothing else (the compose healthcheck
# uses bash's /dev/tcp instead of curl).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin leanpoint
COPY --from=build /build/target/release/leanpoint /usr/local/bin/leanpoint
USER 10001:10001
# leanpoint's default port; the sim's nodes listen where --base-port says.
EXPOSE 5555
ENTRYPOINT ["/usr/local/bin/leanpoint"]
