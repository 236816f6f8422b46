# The API as a container service: Gunicorn + Uvicorn workers over functions.asgi:app.
# Installs the wheel `make wheel` builds (dist/), the one package every image and `pip install` get; dist/ is
# bound for that step only (BuildKit), so the image holds the installed package and not the wheel as well.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY infra/api/gunicorn.conf.py infra/api/gunicorn.conf.py
RUN --mount=type=bind,source=dist,target=/tmp/dist \
    pip install --no-cache-dir "/tmp/dist/videoapi-0.1.0-py3-none-any.whl[api]"
USER 10001
# JSON logs (job and trace ids on each line); metrics on 9808 from Gunicorn's master (gunicorn.conf.py)
ENV VIDEOAPI_LOG_FORMAT=json PROMETHEUS_MULTIPROC_DIR=/tmp/videoapi-api-metrics VIDEOAPI_API_METRICS_PORT=9808
EXPOSE 8080 9808
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/v1/health', timeout=2)"
CMD ["gunicorn", "-c", "infra/api/gunicorn.conf.py", "functions.asgi:app"]
