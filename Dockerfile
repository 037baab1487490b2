# One image for the server and the workers.
#   docker build -t autopeft .                                   # CPU image
#   docker build -t autopeft-gpu --build-arg BASE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 .
# On a CUDA base, pip's torch==2.13.0 is the CUDA build; on these machines it is a local CPU wheel.
ARG BASE=python:3.11-slim
FROM ${BASE}

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1 AUTOPEFT_DATA_DIR=/data/glue
RUN if ! command -v python3 >/dev/null; then \
        apt-get update && apt-get install -y --no-install-recommends python3 python3-venv && rm -rf /var/lib/apt/lists/*; \
    fi

WORKDIR /app
COPY . /app
# The README's install commands, verbatim (tests check they stay the same).
RUN python3 -m venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH VIRTUAL_ENV=/app/.venv
RUN pip install -c requirements.lock torch==2.13.0
RUN pip install -c requirements.lock -e '.[all]'

EXPOSE 8000
VOLUME ["/data"]
CMD ["autopeft", "serve", "--host", "0.0.0.0", "--port", "8000"]
