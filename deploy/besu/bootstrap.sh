#!/bin/sh
# The besu profile's one-shot `besu-deploy` service: deploy the contracts on the QBFT network
# (once), have the council (seats 1-3, 2 of 3) admit the two custodians at their gateways'
# endpoints, bring every validator's account allowlist in line with MemberRegistry (so the
# custodians' admin keys may send), and register each gateway's relayer key.
# Every step is idempotent, so a restarted stack finds its work done.
#   CARELEDGER_RPC_URL, CARELEDGER_DEPLOYMENT_FILE  where the chain is / the file goes
#   ACCOUNTS               folder of the generated account keys (deploy/besu/generate.py)
#   BESU_NODES             the validators' JSON-RPC URLs (PERM api), space-separated
#   CLINIC_A_ENDPOINT, CLINIC_B_ENDPOINT                  the gateways' registered URLs
#   CLINIC_A_RELAYER_KEY_FILE, CLINIC_B_RELAYER_KEY_FILE  made by `careledger gateway init-keys`
set -eu
py=${PYTHON:-python}
deploy() { "$py" -m careledger.cli.deploy "$@"; }
a=$ACCOUNTS

deploy contracts --deployer-key "$a/deployer.key" \
  --council "$a/council-1.key" --council "$a/council-2.key" --council "$a/council-3.key" --threshold 2
deploy admit --council-key "$a/council-1.key" --council-key "$a/council-2.key" \
  --member "$a/custodian-a.key" --role CLINIC --name "Clinic A" --endpoint "$CLINIC_A_ENDPOINT"
deploy admit --council-key "$a/council-1.key" --council-key "$a/council-2.key" \
  --member "$a/custodian-b.key" --role CLINIC --name "Clinic B" --endpoint "$CLINIC_B_ENDPOINT"

# The deployer's work is done: from here on the allowlist is MemberRegistry's alone.
nodes=""
for url in $BESU_NODES; do nodes="$nodes --node $url"; done
# shellcheck disable=SC2086
"$py" -m careledger.cli.allowlist sync --once $nodes

deploy relayer --member-key "$a/custodian-a.key" --relayer-key "$CLINIC_A_RELAYER_KEY_FILE"
deploy relayer --member-key "$a/custodian-b.key" --relayer-key "$CLINIC_B_RELAYER_KEY_FILE"
