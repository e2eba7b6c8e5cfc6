# Images for the demo cluster of docker-compose.yml (see docs/docker.md).
#
#   target rexi-node: the daemon and its tools, nothing else.
#   target beam:      Erlang/OTP 25 with erlang-interop's rexi application compiled into
#                     /opt/erlang-interop/ebin, plus the rexi-node binary so the operator
#                     tools (status, migrate-check) also run inside the BEAM containers.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --bin rexi-node

FROM debian:bookworm-slim AS rexi-node
COPY --from=build /src/target/release/rexi-node /usr/local/bin/rexi-node
# The daemon starts its own epmd when none answers, so nothing else is needed here.
CMD ["rexi-node", "run"]

FROM erlang:25 AS beam
WORKDIR /opt/erlang-interop
COPY erlang-interop/src ./src
# The same build the project's scripts do, without rebar: erlc into ebin, and the .app
# from the .app.src.
RUN mkdir -p ebin \
 && erlc -o ebin src/*.erl \
 && cp src/rexi.app.src ebin/rexi.app
COPY --from=build /src/target/release/rexi-node /usr/local/bin/rexi-node
