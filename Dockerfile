# syntax=docker/dockerfile:1
# Portcullis gateway image.
#   docker build -t portcullis .
#   docker run --read-only --tmpfs /tmp -v portcullis-state:/var/lib/portcullis \
#     -v "$PWD/my-config:/etc/portcullis:ro" -e GATEWAY_KEK -p 8080:8080 portcullis
# Config and policies are mounted at /etc/portcullis (gateway.yaml, policies/*.yaml; the image
# ships deploy/config/gateway.yaml and policies/ there as an example); all state (SQLite store,
# dev key in dev mode) lives in the one volume /var/lib/portcullis. The root filesystem can be
# read-only; /tmp should be a tmpfs (metrics of --workers > 1). Arguments after the image name
# go to `gateway run` (e.g. --workers 4). Without GATEWAY_KEK the container exits 2, unless
# PORTCULLIS_DEV=1 (a throwaway local key in the volume). If you change `listen`, set
# PORTCULLIS_HEALTH_URL to match.

FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY plugins ./plugins
# Wheels for the gateway and every dependency; the runtime stage installs only these.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GATEWAY_CONFIG=/etc/portcullis/gateway.yaml \
    PORTCULLIS_STATE=/var/lib/portcullis \
    PORTCULLIS_HEALTH_URL=http://127.0.0.1:8080/.gateway/healthz
RUN groupadd --system --gid 10001 portcullis \
    && useradd --system --uid 10001 --gid portcullis --no-create-home \
       --home-dir /var/lib/portcullis --shell /usr/sbin/nologin portcullis \
    && install -d -o portcullis -g portcullis -m 0700 /var/lib/portcullis \
    && install -d -m 0755 /etc/portcullis/policies
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels /wheels/portcullis-*.whl
COPY --chmod=0755 deploy/entrypoint.py /usr/local/bin/portcullis-entrypoint
COPY deploy/config/gateway.yaml /etc/portcullis/gateway.yaml
COPY policies/ /etc/portcullis/policies/

USER 10001:10001
WORKDIR /var/lib/portcullis
VOLUME ["/var/lib/portcullis"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os,sys,urllib.request as u; sys.exit(0 if u.urlopen(os.environ['PORTCULLIS_HEALTH_URL'], timeout=2).status == 200 else 1)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["portcullis-entrypoint"]
CMD []
