# report-service image. Build from the repository root:
#   docker build -f deploy/docker/report-service.Dockerfile -t report-service:0.1.0 .
# Serve:   docker run report-service:0.1.0            (CMD: serve)
# Migrate: docker run report-service:0.1.0 migrate    (apply pending migrations, exit)
# PYTHON_IMAGE: any Debian-based image with Python 3.11 and venv (docs/deployment.md).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml ./
COPY shared/ shared/
COPY report_service/ report_service/
# The project declares both console scripts; this image holds only report_service.
RUN /opt/venv/bin/pip install . && rm /opt/venv/bin/cohort-service /opt/venv/bin/draft-edge

FROM ${PYTHON_IMAGE}
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /app app
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    REPORT_HOST=0.0.0.0 \
    REPORT_PORT=50052
WORKDIR /app
USER 10001:10001
EXPOSE 50052
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD report-service health --address "127.0.0.1:${REPORT_PORT}" --timeout 3
ENTRYPOINT ["report-service"]
CMD ["serve"]
