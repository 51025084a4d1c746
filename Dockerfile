# One image for the API and the workers. It installs the project the way the README does
# (`make install`: a virtual environment in /app/.venv with the pinned torch).
FROM python:3.11-slim

RUN apt-get update && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/*
# The unprivileged user the children that touch uploads run as (ARENA_SANDBOX_USER).
RUN useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
    arena-sandbox

WORKDIR /app
COPY pyproject.toml Makefile README.md ./
COPY server ./server
COPY worker ./worker
COPY models ./models
RUN make install

ENV PATH="/app/.venv/bin:${PATH}" \
    ARENA_HOME=/data \
    PYTHONUNBUFFERED=1
VOLUME ["/data"]
EXPOSE 8000
CMD ["arena", "serve", "--host", "0.0.0.0", "--port", "8000"]
