# The service image (`invoice-verify serve`, and `reconcile --loop` from the same image).
# Two stages: wheels are built with the compilers present, the runtime image has none.

FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
RUN pip install --no-cache-dir --upgrade pip
# Only what the package needs: no .venv, data or tests in the build context's copy.
COPY pyproject.toml README.md ./
COPY indexer ./indexer
COPY fallback ./fallback
COPY verify ./verify
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11.11-slim-bookworm
# libzbar0: the system library pyzbar (the second QR decoder) loads at run time.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libzbar0 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
# An unprivileged user owning only the data directory (the local intake journal lives there).
RUN useradd --system --uid 10001 --home-dir /data --create-home invoice
USER invoice
WORKDIR /data
ENV INVOICE_HOST=0.0.0.0 \
    INVOICE_PORT=8080 \
    INVOICE_DATA_DIR=/data \
    PYTHONUNBUFFERED=1
EXPOSE 8080
VOLUME ["/data"]
CMD ["invoice-verify", "serve"]
