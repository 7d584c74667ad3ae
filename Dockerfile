# Brenia's image for the scale-out profile: the same image runs web, worker and release
# (see compose.yaml and docs/deployment.md). Build: docker build -t brenia .
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY requirements.txt constraints.txt ./
RUN pip install -r requirements.txt

COPY . .
# Static files are collected into the image (WhiteNoise serves them from data/). The key
# is for this step only: a running container must be given its own SECRET_KEY.
RUN BRENIA_ENV=production SECRET_KEY=collectstatic-build-only \
    python manage.py collectstatic --noinput -v 0 \
    && useradd --create-home --uid 10001 brenia \
    && mkdir -p /app/data /media \
    && chown -R brenia /app/data /media

USER brenia
EXPOSE 8000
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "-v", "0", "brenia.asgi:application"]
