# syntax=docker/dockerfile:1
# The account service's image. Build context: the repository root (see skaffold.yaml), e.g.
#   DOCKER_BUILDKIT=1 docker build -f docker/account.Dockerfile -t bookstore/account .
#
# How rebuilds stay cheap (the four Dockerfiles differ only in the program's name and port):
# - Downloads: the `deps` stage sees only Cargo.toml and Cargo.lock files (plus empty stand-in
#   sources, because Cargo refuses a member without a target) and runs `cargo fetch` for the
#   builder's own platform. Docker keeps that layer until a manifest or the lock file changes, so
#   editing code never re-downloads, and the build itself runs --offline.
# - Compilation: target/ lives in a BuildKit cache mount that the four images share
#   (id=bookstore-target). Cargo's fingerprints then recompile only the crates that changed and
#   their dependents, and the dependencies compiled for the first image serve the other three.
#   Layer caching alone cannot do this: any source edit invalidates the `COPY . .` layer and
#   everything after it. cargo-chef gets there with layers and a stub build, but it is one more
#   tool to install (not available offline here) and its stub build has to reproduce our
#   code-generating build script (idl/build.rs); the cache mount needs neither.
# - The cache mount is not part of the image, so the binary is copied out in the same RUN.
# skaffold.yaml builds one image at a time (concurrency 1), so the shared mount is never fought
# over; `sharing=locked` makes that safe for parallel `docker build`s too.

FROM rust:1.95-bookworm AS deps
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY idl/Cargo.toml idl/
COPY services/platform/Cargo.toml services/platform/
COPY services/account/Cargo.toml services/account/
COPY services/warehouse/Cargo.toml services/warehouse/
COPY services/payment/Cargo.toml services/payment/
COPY gateway/Cargo.toml gateway/
COPY launcher/Cargo.toml launcher/
COPY bench/Cargo.toml bench/
COPY reliability/Cargo.toml reliability/
COPY examples/Cargo.toml examples/
RUN for member in idl services/platform services/account services/warehouse services/payment gateway launcher bench reliability examples; do \
        mkdir -p "$member/src" && touch "$member/src/lib.rs"; \
    done \
 && cargo fetch --locked --target "$(rustc --print host-tuple)"

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY --from=deps /usr/local/cargo/registry /usr/local/cargo/registry
COPY . .
RUN --mount=type=cache,id=bookstore-target,sharing=locked,target=/src/target \
    cargo build --profile production --locked --offline -p account --bin account \
 && install -D -m 0755 target/production/account /out/account

# glibc and libgcc from the same Debian release as the builder; no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/account /usr/local/bin/account
# The distroless `nonroot` user, by number so that Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 8810
ENV CONFIG_PATH=/etc/bookstore/account.toml
# Exec form: the program is PID 1 and receives SIGTERM itself (it installs a handler, which
# PID 1 needs) instead of a shell that would not pass the signal on.
ENTRYPOINT ["/usr/local/bin/account"]
