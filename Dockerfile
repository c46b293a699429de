# syntax=docker/dockerfile:1
# Two stages on one pinned base: dependencies are built into a virtualenv first (the
# layer only changes with requirements.lock), then the runtime image copies it and runs
# as an unprivileged user. Data is a read-only volume at /data.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
RUN python -m venv /app/.venv
COPY requirements.lock pyproject.toml README.md ./
RUN /app/.venv/bin/pip install -c requirements.lock "flask" "gunicorn[gevent]" "gevent" \
    "prometheus_client"
COPY config ./config
COPY service ./service
COPY gunicorn.conf.py ./
RUN /app/.venv/bin/pip install --no-deps -c requirements.lock . \
 && /app/.venv/bin/python -m compileall -q /app/config /app/service

FROM ${PYTHON_IMAGE} AS runtime
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin app \
 && mkdir /data /cache && chown app /data && chown app:app /cache && chmod 700 /cache
WORKDIR /app
COPY --from=builder --chown=root:root /app /app
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DL_DATA_ROOT=/data \
    DL_BIND=0.0.0.0:8000 \
    XDG_CACHE_HOME=/cache
USER app
EXPOSE 8000
# /cache: the digest cache (a restart must not hash every file again); a volume, so it
# is writable in a read-only container too.
VOLUME ["/data", "/cache"]
# No curl in the image: the health check uses the interpreter that is already there.
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
  CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["gunicorn", "-c", "gunicorn.conf.py"]
