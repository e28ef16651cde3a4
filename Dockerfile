# The CareLedger package in one image: the gateway (default CMD), the CLI, the one-shot
# deploy steps and the allowlist sync (see docker-compose.yml and docs/deploy.md).
# Everything comes from registries at build time: npm (solc as WebAssembly, OpenZeppelin,
# from package-lock.json), PyPI (pinned by requirements.lock), Debian. The contracts are
# compiled here, so a container needs no compiler download and no network but the chain's.

FROM node:22.12.0-bookworm-slim AS toolchain
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: no install script may fetch a binary. The Foundry binaries are not
# needed in this image (anvil has its own, deploy/anvil/Dockerfile).
RUN npm install --ignore-scripts --no-audit --no-fund --loglevel=error \
 && rm -rf node_modules/@foundry-rs node_modules/@uniswap node_modules/hl7.fhir.r4.examples

# Python 3.11, as on the project's machines: requirements.lock was resolved there.
FROM python:3.11.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends libstdc++6 \
 && rm -rf /var/lib/apt/lists/*
# node runs scripts/solc (the WebAssembly compiler's CLI shim) if the contracts need compiling.
COPY --from=toolchain /usr/local/bin/node /usr/local/bin/node

WORKDIR /app
COPY requirements.lock pyproject.toml README.md foundry.toml package.json package-lock.json ./
COPY backend backend
# Runtime dependencies only, at the versions requirements.lock pins.
RUN pip install -c requirements.lock -e .
COPY contracts contracts
COPY scripts/solc scripts/solc
COPY --from=toolchain /app/node_modules node_modules
# Compile once here: compile_contracts() caches the artifacts under build/python, keyed by
# the sources, foundry.toml's settings and package-lock.json, all of which are in the image.
RUN python -c "from careledger.chain.compile import compile_contracts; compile_contracts()"
COPY deploy/dev deploy/dev
COPY deploy/besu/bootstrap.sh deploy/besu/bootstrap.sh

RUN useradd --system --uid 10001 --home-dir /var/lib/careledger careledger \
 && mkdir -p /var/lib/careledger/keys /var/lib/careledger/chain \
 && chown -R careledger /var/lib/careledger \
 && chmod 700 /var/lib/careledger/keys
USER careledger
EXPOSE 8000
CMD ["careledger", "gateway", "serve", "--host", "0.0.0.0", "--port", "8000"]
