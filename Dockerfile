# One image for every orweb service (web, workers, beat, the one-shot migrate), built from this checkout and
# PyPI's packages only, run as an unprivileged user. See .dockerignore for what stays out.
FROM python:3.12-slim
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
# The dependencies first, from the pinned constraints, so that a code change doesn't reinstall them.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -c constraints.txt -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY . .
RUN pip install --no-deps -c constraints.txt . \
    && DEBUG=1 python manage.py collectstatic --no-input -v 0 \
    && useradd --system --uid 10001 --user-group --no-create-home --home-dir /app orweb \
    && install -d -o orweb -g orweb -m 0700 /journal /batches /metrics
USER orweb
EXPOSE 8000
