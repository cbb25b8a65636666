# Yunguan's container image: the same `pip install .` as scripts/venv.sh, on
# Debian 12 (python:3.11-slim), run as an unprivileged user.
#
#   docker buildx build --platform linux/amd64,linux/arm64 -t REGISTRY/yunguan/yunguan:0.1.0 --push .
#
# Multi-arch: no architecture is named anywhere; the base image and every
# dependency have amd64 and arm64 (Kunpeng, Phytium) builds. The build stage
# has a compiler for any dependency that lacks a wheel on the target platform
# (e.g. loongarch64), so the runtime stage stays free of it.
# The Helm chart runs it with a read-only root filesystem: writable are only
# /tmp and /var/lib/yunguan (YUNGUAN_DATA_DIR), both emptyDir volumes there.

FROM python:3.11-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY controlplane ./controlplane
COPY providers ./providers
COPY quotas ./quotas
COPY migration ./migration
COPY api ./api
COPY examples ./examples
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ARG UID=10001
RUN groupadd --gid "$UID" yunguan \
 && useradd --uid "$UID" --gid "$UID" --home-dir /var/lib/yunguan --no-create-home \
        --shell /usr/sbin/nologin yunguan \
 && install -d -o yunguan -g yunguan -m 0750 /var/lib/yunguan
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/var/lib/yunguan \
    YUNGUAN_DATA_DIR=/var/lib/yunguan \
    YUNGUAN_MODE=production
WORKDIR /var/lib/yunguan
USER 10001:10001
# 8080: `yunguan serve`; 9464: `yunguan exporter`.
EXPOSE 8080 9464
ENTRYPOINT ["yunguan"]
CMD ["serve"]
