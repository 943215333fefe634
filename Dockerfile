# dockroute as users run it: a sidecar with the Docker socket (or a socket proxy) and ports 80/443.
#   docker build -t dockroute .                  (any registry-backed machine)
#   scripts/build-image                          (offline: a Debian base made locally, tagged dockroute:local)
# BASE_IMAGE (the runtime) must be a Debian-based image with python3 (>= 3.11); BUILD_IMAGE (default: the
# same) must have the same python3 at the same path, its venv module, and either binutils or apt.
ARG BASE_IMAGE=python:3.12-slim-bookworm
ARG BUILD_IMAGE=${BASE_IMAGE}

FROM ${BUILD_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
# The image has the `kubernetes` extra (providers.kubernetesIngress); the client's asyncio copy
# (kubernetes/aio, 41 MB in 37.x) is deleted: dockroute calls the synchronous client from threads only.
# binutils: strip the debug info most binary wheels carry (uvloop, zstandard, brotli: ~50 MB of 90).
RUN command -v strip >/dev/null || { apt-get update -qq \
        && apt-get install -y -qq --no-install-recommends binutils >/dev/null && rm -rf /var/lib/apt/lists/*; }
WORKDIR /src
COPY pyproject.toml README.md ./
COPY discover discover
COPY router router
COPY acme_client acme_client
COPY dockroute dockroute
RUN python3 -m venv /opt/dockroute \
    && /opt/dockroute/bin/pip wheel -q --no-deps -w /wheels . \
    && /opt/dockroute/bin/pip install -q "$(echo /wheels/dockroute-*.whl)[kubernetes]" \
    && rm -rf /opt/dockroute/lib/python3*/site-packages/kubernetes/aio \
    && /opt/dockroute/bin/pip uninstall -q -y pip setuptools wheel \
    && find /opt/dockroute -name '*.so' -exec strip --strip-unneeded {} + \
    && find /opt/dockroute -depth \( -name '__pycache__' -o -name '*.pyx' -o -name '*.pxd' \
         -o -name '*.c' -o -name '*.h' \) -exec rm -rf {} + \
    && rm -f /opt/dockroute/lib/python3*/site-packages/zstandard/_cffi*.so \
    && /opt/dockroute/bin/python -m compileall -q -j 0 /opt/dockroute/lib

FROM ${BASE_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="dockroute" \
      org.opencontainers.image.description="A reverse proxy for Docker hosts: label a container with a hostname, get it routed over HTTPS." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/dockroute/dockroute" \
      org.opencontainers.image.documentation="https://github.com/dockroute/dockroute/blob/main/docs/docker.md"
# The user written directly (no useradd: the offline runtime base has no account tools).
RUN echo 'dockroute:x:65532:65532:dockroute:/data:/usr/sbin/nologin' >>/etc/passwd \
    && echo 'dockroute:x:65532:' >>/etc/group \
    && if [ -f /etc/shadow ]; then echo 'dockroute:!:19000::::::' >>/etc/shadow; fi \
    && mkdir -p /data && chown 65532:65532 /data && chmod 700 /data
COPY --from=build /opt/dockroute /opt/dockroute
COPY scripts/docker-entrypoint /usr/local/bin/docker-entrypoint
# `traefik` as a command: a Traefik compose healthcheck (["CMD", "traefik", "healthcheck", "--ping"]) runs it.
RUN ln -s /opt/dockroute/bin/dockroute /usr/local/bin/traefik
ENV PATH=/opt/dockroute/bin:$PATH PYTHONUNBUFFERED=1
WORKDIR /data
VOLUME /data
EXPOSE 80 443
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=6s --start-period=10s --retries=3 CMD ["dockroute", "healthcheck", "--container"]
ENTRYPOINT ["docker-entrypoint"]
CMD ["dockroute"]
