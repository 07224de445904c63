# syntax=docker/dockerfile:1
# Production image for the OneVisit service: `onevisit serve` (uvicorn) on port 8000, talking to
# PostgreSQL through DATABASE_URL. The service applies its database migrations at start-up.
# See docs/deployment.md.
#
# The base image is pinned to an exact Python patch release. For byte-for-byte reproducible
# builds, also pin its digest: `docker buildx imagetools inspect python:3.11.13-slim-bookworm`,
# then write FROM python:3.11.13-slim-bookworm@sha256:<digest> in both stages.

# ---- builder: install the project and its dependencies into /opt/venv -------------------------
FROM python:3.11.13-slim-bookworm AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH="/opt/venv/bin:${PATH}"

WORKDIR /src
# Every dependency (ortools, psycopg[binary], uvloop, ...) ships manylinux wheels, so no compiler
# or system package is needed. A non-editable install, so /opt/venv holds everything; the
# `serve --help` smoke test fails the build if the entry point or the serve command is broken.
COPY pyproject.toml README.md ./
COPY scheduler/ scheduler/
COPY api/ api/
RUN pip install --no-cache-dir . \
    && onevisit serve --help > /dev/null

# ---- runtime: the venv only, run as an unprivileged user ---------------------------------------
FROM python:3.11.13-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="onevisit" \
      org.opencontainers.image.description="OneVisit consolidated-visit planning service" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ONEVISIT_WORKERS=2

# Fixed numeric ids so orchestrators can verify runAsNonRoot. /var/lib/onevisit is the only
# writable directory (working directory, so a SQLite default, if ever used, lands there).
RUN groupadd --system --gid 10001 onevisit \
    && useradd --system --uid 10001 --gid onevisit --no-create-home \
       --home-dir /var/lib/onevisit --shell /usr/sbin/nologin onevisit \
    && install -d -o onevisit -g onevisit -m 0750 /var/lib/onevisit

COPY --from=builder /opt/venv /opt/venv

WORKDIR /var/lib/onevisit
USER 10001:10001

EXPOSE 8000

# Liveness only (/healthz); /readyz checks the database and is for load balancers/orchestrators.
# slim has no curl: use Python's urllib (a non-2xx answer or no answer raises, so exit 1).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["onevisit", "serve", "--host", "0.0.0.0", "--port", "8000"]
