# leanpoint container image: build with the Rust toolchain, run on a slim
# Debian with only the binary and CA certificates, as a non-root user.
#
#   docker build -t leanpoint .
#   docker run --rm -p 5555:5555 \
#     -v $(pwd)/upstreams.json:/etc/leanpoint/upstreams.json:ro leanpoint
#
# The Zig leanpoint image's usage, unchanged: with no arguments the image
# reads /etc/leanpoint/upstreams.json (and exits 2 naming that path when
# nothing is mounted there, instead of polling 127.0.0.1 quietly).
# Arguments replace that default: `docker run IMAGE --lean-url http://node:5052`
# polls one node; `docker run IMAGE leanpoint --upstreams-config FILE`, the
# Zig form that names the binary, works too (a leading `leanpoint` is the
# binary's own name and is dropped). The same image runs the simulated
# devnet: `leanpoint sim ...` (see docker-compose.yml).

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
    && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin leanpoint \
    && mkdir -p /etc/leanpoint
COPY --from=build /build/target/release/leanpoint /usr/local/bin/leanpoint
USER 10001:10001
# leanpoint's default port; the sim's nodes listen where --base-port says.
EXPOSE 5555
ENTRYPOINT ["/usr/local/bin/leanpoint"]
CMD ["--upstreams-config", "/etc/leanpoint/upstreams.json"]
