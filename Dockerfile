# Two stages on one pinned base: dependencies are built into a virtualenv first (the
# layer only changes with requirements.lock), then the runtime image copies that venv
# alone (the service is installed in it: no second copy of the source, no build
# leftovers, no pip) and runs as an unprivileged user. Data is a read-only volume at /data.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /app/.venv
COPY requirements.lock ./
# Exactly the lock (runtime dependencies and the build backend), each file by its hash.
RUN /app/.venv/bin/pip install --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY config ./config
COPY service ./service
RUN /app/.venv/bin/pip install --no-deps --no-build-isolation . \
 && /app/.venv/bin/pip uninstall --yes --quiet pip setuptools \
 && /app/.venv/bin/python -m compileall -q /app/.venv/lib

FROM ${PYTHON_IMAGE} AS runtime
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin app \
 && mkdir /data /cache && chown app /data && chown app:app /cache && chmod 700 /cache
WORKDIR /app
COPY --from=builder --chown=root:root /app/.venv /app/.venv
COPY --chown=root:root gunicorn.conf.py ./
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DL_DATA_ROOT=/data \
    DL_BIND=0.0.0.0:8000 \
    XDG_CACHE_HOME=/cache \
    DL_GRACEFUL_TIMEOUT=8
# docker/podman stop send SIGTERM and, 10 s later by default, SIGKILL. gunicorn lets
# downloads in flight run for DL_GRACEFUL_TIMEOUT after SIGTERM, then closes them and
# exits 0: 8 s fits the default. Longer grace: raise both (README, "Docker").
STOPSIGNAL SIGTERM
USER app
EXPOSE 8000
# /cache: the digest cache (a restart must not hash every file again); a volume, so it
# is writable in a read-only container too.
VOLUME ["/data", "/cache"]
# No curl in the image: the interpreter asks /healthz wherever DL_BIND put the server.
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
  CMD ["python", "-m", "service.healthcheck"]
CMD ["gunicorn", "-c", "gunicorn.conf.py"]
