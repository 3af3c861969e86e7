# syntax=docker/dockerfile:1
#
# The switchyard binary in a small image:
#   docker build -t switchyard .
#   docker run --rm -p 8080:8080 switchyard            # the dispatcher, on 0.0.0.0:8080
#   docker run --rm -v "$PWD/pipeline.yaml:/etc/switchyard/pipeline.yaml:ro" \
#     switchyard run --config /etc/switchyard/pipeline.yaml
# deploy/compose/docker-compose.yml runs it with Redis.

ARG RUST_VERSION=1.95

# Build: the `dist` profile (whole-program optimisation, no debug info).
FROM rust:${RUST_VERSION}-slim-bookworm AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --profile dist -p switchyard \
    && install -m 0755 target/dist/switchyard /usr/local/bin/switchyard

# Run: Debian slim, CA certificates for HTTPS sinks, curl for the health check.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/switchyard \
       --create-home --shell /usr/sbin/nologin switchyard
COPY --from=builder /usr/local/bin/switchyard /usr/local/bin/switchyard

USER switchyard:switchyard
# Relative paths (the file sink's events.jsonl, switchyard-dlq, switchyard-buffer)
# land here; mount a volume to keep them.
WORKDIR /var/lib/switchyard
VOLUME ["/var/lib/switchyard"]

# Inside a container the dispatcher listens on every interface; `run` takes its
# addresses from the pipeline file (give its admin.address port to the check).
ENV DISPATCHER_LISTEN=0.0.0.0:8080 \
    SWITCHYARD_HEALTH_URL=http://127.0.0.1:8080/health
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD curl -fsS -o /dev/null "$SWITCHYARD_HEALTH_URL" || exit 1
STOPSIGNAL SIGTERM

ENTRYPOINT ["switchyard"]
CMD ["dispatcher"]
