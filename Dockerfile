# One image for both services of similar-users (see docker-compose.yml and infra/):
#   docker run IMAGE                                   the API: python run_server.py serve
#   docker run IMAGE python run_generator.py generate  the batch job
# Configuration comes from the environment (see example.env); nothing is baked in.

# The tag names an exact Python patch release on Debian 12 (bookworm). Its digest changes when
# Docker rebuilds the tag for Debian fixes and could not be resolved where this file was written
# (no registry access); to freeze it, append the digest that
#   docker buildx imagetools inspect python:3.11.16-slim-bookworm
# prints, as FROM python:3.11.16-slim-bookworm@sha256:<digest>.
FROM python:3.11.16-slim-bookworm AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# Build: every dependency installs from a binary wheel into a virtual environment, so the
# runtime stage needs neither compilers nor pip's cache.
FROM base AS build
WORKDIR /src
COPY pyproject.toml README.md config.py ./
COPY similarity/ similarity/
COPY generator/ generator/
COPY server/ server/
COPY store/ store/
COPY devstack/ devstack/
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --only-binary=:all: . \
    && /opt/venv/bin/pip uninstall --yes pip setuptools

# Runtime: the virtual environment, the code, and an unprivileged user. The programs run from
# /app, importing the packages beside them (and server/gunicorn.conf.py, which is not a module);
# the venv's copy of the packages from `pip install .` is the same code.
FROM base
# /artifacts belongs to the app's user so that a volume mounted there (docker-compose's artifacts)
# starts writable by the generator: a new named volume takes the owner of its mount point.
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin app \
    && install -d -o 10001 -g 10001 /artifacts
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY similarity/ similarity/
COPY generator/ generator/
COPY server/ server/
COPY store/ store/
COPY devstack/ devstack/
COPY config.py run_server.py run_generator.py ./
ENV PATH=/opt/venv/bin:$PATH \
    HOST=0.0.0.0 \
    PORT=5000
# /tmp stays writable when the root filesystem is mounted read-only (infra/: ECS mounts a task
# volume on this VOLUME path and copies the image's permissions, 1777, to it).
VOLUME ["/tmp"]
USER 10001:10001
EXPOSE 5000
CMD ["python", "run_server.py", "serve"]
