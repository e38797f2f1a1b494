# syntax=docker/dockerfile:1
#
# The oz-worker image: `bun build --compile` in a build stage, then the single
# self-contained binary on a minimal non-root runtime.
#
#   docker build -t oz-worker:0.1.0 .
#   docker run --rm oz-worker:0.1.0 --help
#
# The runtime is debian-slim with CA certificates; the Helm chart's probes
# are httpGet probes of the worker's /healthz and /readyz, so the image needs
# no tools of its own (a custom exec probe must bring what it runs).

# Where no registry is reachable, scripts/image builds both bases from Debian
# packages (plus node and npm from the npm registry) and passes them here.
ARG BUILD_IMAGE=node:22-bookworm-slim
ARG RUNTIME_IMAGE=debian:12-slim

FROM ${BUILD_IMAGE} AS build
WORKDIR /src
ENV CI=1 \
    npm_config_audit=false \
    npm_config_fund=false \
    npm_config_update_notifier=false
# Dependencies first, so source edits reuse this layer. bun itself is a pinned
# devDependency: npm ci installs the build platform's bun binary.
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci
COPY . .
# The commit `oz-worker --version` reports. The context has no .git (see
# .dockerignore), so pass it in, e.g.
#   docker build --build-arg OZ_WORKER_COMMIT="$(git rev-parse --short=12 HEAD)" .
# Empty: scripts/build embeds "dev". (For another architecture, build with
# --platform: this stage then runs on it, so the binary it compiles and
# checks is native; scripts/build's BUN_TARGET is not needed.)
ARG OZ_WORKER_COMMIT=""
# scripts/build writes dist/oz-worker (and source maps, dist/*.map, which are not
# shipped). Check that the binary is self-contained, as test/e2e/binary.test.ts
# does: from a directory holding nothing else, with an empty environment, it
# prints its help and validates a config file.
RUN OZ_WORKER_COMMIT="${OZ_WORKER_COMMIT}" scripts/build \
 && probe="$(mktemp -d)" \
 && cp dist/oz-worker "$probe/" \
 && printf 'worker_id: image-check\nbackend:\n  kubernetes:\n    namespace: oz-tasks\n' >"$probe.yaml" \
 && (cd "$probe" && env -i ./oz-worker --help >/dev/null \
      && env -i ./oz-worker validate-config --config-file "$probe.yaml" >/dev/null) \
 && rm -rf "$probe" "$probe.yaml"

FROM ${RUNTIME_IMAGE} AS runtime
# ca-certificates: TLS to Oz and the API server. User and group 10001, as the
# chart runs it.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 oz \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin oz
# Labels after the apt layer, so a new version or commit reuses it.
ARG VERSION=0.1.0
ARG OZ_WORKER_COMMIT=""
LABEL org.opencontainers.image.title="oz-worker" \
      org.opencontainers.image.description="Self-hosted Oz worker: runs cloud agent tasks as Kubernetes Jobs" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${OZ_WORKER_COMMIT}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build --chown=0:0 --chmod=0755 /src/dist/oz-worker /usr/local/bin/oz-worker
# The root filesystem is read-only under the chart; /tmp is its emptyDir.
ENV HOME=/tmp \
    TMPDIR=/tmp
WORKDIR /tmp
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/oz-worker"]
# Where the chart (like the Go worker's) mounts its ConfigMap; the chart passes
# its own args, so this serves `docker run` with that same mount.
CMD ["run", "--config-file", "/etc/oz-agent-worker/config.yaml"]
