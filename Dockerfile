FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY orchestrator ./orchestrator
COPY workers ./workers
COPY tasks ./tasks
RUN pip install --no-cache-dir ".[openai,anthropic]"
