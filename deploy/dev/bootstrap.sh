#!/bin/sh
# The default stack's one-shot `deploy` service: deploy the contracts on anvil (once), have
# the council (anvil dev accounts #1-#3, 2 of 3) admit Clinic A (dev account #10, as
# `careledger dev` does) at its gateway's endpoint, and register the gateway's relayer key.
# Every step is idempotent, so a restarted stack finds its work done.
#   CARELEDGER_RPC_URL, CARELEDGER_DEPLOYMENT_FILE  where the chain is / the file goes
#   CLINIC_ENDPOINT                                 Clinic A's gateway URL as clients see it
#   RELAYER_KEY_FILE                                the key `careledger gateway init-keys` made
# Anvil's dev keys are public: this script is for the local stack only (the deploy command
# refuses them on any chain but 31337).
set -eu
py=${PYTHON:-python}
deploy() { "$py" -m careledger.cli.deploy "$@"; }

deploy contracts --deployer-key anvil:0 \
  --council anvil:1 --council anvil:2 --council anvil:3 --threshold 2 --replace-stale
deploy admit --council-key anvil:1 --council-key anvil:2 \
  --member anvil:10 --role CLINIC --name "Clinic A" --endpoint "$CLINIC_ENDPOINT"
deploy relayer --member-key anvil:10 --relayer-key "$RELAYER_KEY_FILE"
