# syntax=docker/dockerfile:1
#
# cohortbot container image.
#   docker build -t cohortbot .
#   docker run -v cohortbot-data:/data -e COHORTBOT_SLACK__BOT_TOKEN=... cohortbot
# A /data/cohortbot.toml is read when present (the working directory is /data); without one,
# defaults and COHORTBOT_* variables configure the bot. See docs/configuration.md.

# ---------------------------------------------------------------- build stage
# Installs cohortbot and every dependency into a self-contained venv at /opt/venv.
# No compiler is installed: all dependencies ship wheels for linux x86_64/arm64
# (matrix-nio >= 0.26 uses vodozemac wheels for E2EE, not libolm/python-olm). Should a
# dependency ever need building from source, add build-essential here, never below.
FROM python:3.11-slim AS build

# No pip self-update check, never prompt.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1

# The venv lives at the same path in both stages, so its script shebangs stay valid.
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# Copy the source (filtered by .dockerignore: no .git, .venv, tests, local config/secrets).
WORKDIR /src
COPY . .

# Install the package with the Slack and Matrix extras; no pip cache left in the layer.
RUN pip install --no-cache-dir ".[slack,matrix]"

# ---------------------------------------------------------------- runtime stage
FROM python:3.11-slim

# An unprivileged system user that owns the data directory and runs the bot.
RUN groupadd --system --gid 10001 cohortbot \
 && useradd --system --uid 10001 --gid cohortbot --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin cohortbot \
 && mkdir -p /data \
 && chown cohortbot:cohortbot /data

# Only the finished venv comes over from the build stage.
COPY --from=build /opt/venv /opt/venv

# PATH: the `cohortbot` entry point. PYTHONUNBUFFERED: logs reach `docker logs` at once.
# COHORTBOT_DATABASE__URL: the SQLite database on the volume.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    COHORTBOT_DATABASE__URL=sqlite+aiosqlite:////data/cohortbot.db

# Config, database and the Matrix key store (relative store_path) all live here.
VOLUME /data
WORKDIR /data

# Slack HTTP mode only (set COHORTBOT_SLACK__HTTP_HOST=0.0.0.0 to listen outside the
# container); Socket Mode and Matrix need no inbound port.
EXPOSE 3000

USER cohortbot

CMD ["cohortbot", "run"]
