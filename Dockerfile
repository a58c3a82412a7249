FROM python:3.11-slim
WORKDIR /app
RUN useradd --create-home metrivo
COPY pyproject.toml README.md config.py ./
COPY api ./api
COPY workers ./workers
COPY attribution ./attribution
COPY db ./db
RUN pip install --no-cache-dir .
USER metrivo
ENV PORT=8000
EXPOSE 8000
CMD ["sh", "-c", "uvicorn api.asgi:app --host 0.0.0.0 --port $PORT --no-access-log --proxy-headers"]
