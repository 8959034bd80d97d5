# The one image every service of docker-compose.yml runs: `celery -A workers.app worker -Q ...`
# or `celery -A workers.app flower`. tests/operate/test_image.py stages what this file puts in
# the image (it reads these COPY, ARG and RUN lines and .dockerignore) and runs every service
# from there.
FROM python:3.11-slim
WORKDIR /app
# The whole build context but what .dockerignore leaves out. pyproject.toml finds the packages,
# so every top-level package of the checkout is installed and none is named here.
COPY . .
# Your tool modules (ORCHESTRATOR_TOOL_MODULES) must be importable in the image. Either put the
# package in the checkout (mytools/__init__.py beside orchestrator/): it is installed like the
# project's own packages. Or name pip requirements here, e.g. in the .env file compose reads:
#   TOOL_PACKAGES="mytools==1.4 git+https://example.com/you/more-tools.git"
# or a distribution in the build context: TOOL_PACKAGES=./vendor/mytools
ARG TOOL_PACKAGES=""
RUN pip install --no-cache-dir ".[openai,anthropic]" $TOOL_PACKAGES
