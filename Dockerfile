# syntax=docker/dockerfile:1
#
# NPS Loop: one image for the web app (gunicorn, the default command), the Celery worker
# and Celery beat. Every setting comes from the environment (see nps_platform/settings.py);
# docker-compose.yml shows a complete local set.

FROM python:3.11-slim

# PYTHONPATH=/app: the code runs from the source tree in /app, not from the copy that
# `pip install .` puts in site-packages. That copy has the Python modules only (the
# wheel carries no app templates), and settings.BASE_DIR must point at /app, where
# templates/, static/, staticfiles/ and var/ live.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    DJANGO_SETTINGS_MODULE=nps_platform.settings

# An unprivileged user. Its home directory is writable (gunicorn keeps its control socket
# under ~/.gunicorn); the code in /app stays owned by root and read-only to it.
RUN groupadd --system app \
    && useradd --system --gid app --create-home --home-dir /home/app \
        --shell /usr/sbin/nologin app

WORKDIR /app

# Dependencies and the Python packages first, so editing a template or a stylesheet does
# not reinstall every dependency. README.md* is optional: pyproject.toml names it as the
# readme, and the wildcard lets the build go on without it.
COPY pyproject.toml README.md* ./
COPY nps_platform ./nps_platform
COPY accounts ./accounts
COPY surveys ./surveys
COPY responses ./responses
COPY followups ./followups
COPY insights ./insights
COPY compat ./compat
RUN pip install --no-cache-dir . \
    && rm -rf build ./*.egg-info

COPY manage.py ./
COPY templates ./templates
COPY static ./static

# SECRET_KEY here is a throwaway value for this one command, not baked into the image: the
# running containers must be given their own. settings.py creates var/ on import; the app
# user owns it (the default SQLite database lives there when DATABASE_URL is unset).
RUN DEBUG=0 SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput \
    && mkdir -p /app/var/media \
    && chown -R app:app /app/var

USER app

EXPOSE 8000

# The probe sends Host: 127.0.0.1, so keep 127.0.0.1 in ALLOWED_HOSTS (or override this
# check). /healthz answers 503 when the database or Redis is down; urlopen raises on it.
# The worker and beat containers serve no HTTP: docker-compose.yml disables this for them.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]

# The shape bench/ingest.py measures: threaded workers (a request waiting on PostgreSQL or
# Redis lets another run) that keep a client's connection open between its requests. One
# worker per core: set WEB_CONCURRENCY (gunicorn reads it) to the machine's cores.
ENV WEB_CONCURRENCY=2
CMD ["gunicorn", "nps_platform.wsgi:application", "--bind", "0.0.0.0:8000", "--worker-class", "gthread", "--threads", "4", "--keep-alive", "10", "--access-logfile", "-"]
