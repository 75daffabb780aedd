#!/usr/bin/env bash
# Deploys the Flexchange core into a resource group, from an empty one to a core that onboards members:
#
#   npm run azure:deploy -- --resource-group rg-flexchange-core --location westeurope \
#       --parameters infra/core.parameters.json --chain-id 4242 [--validators 4] \
#       [--treasury 0x…=100000] [--member-subscription <id>] [--invite-redirect-url <url>] [--state-dir .azure]
#
# --treasury gives ether at block 0 to an address the operator holds (it funds the core's treasury account later).
# Each step is idempotent: run it again after a failure, or to roll out a new release.
#   1. the validators' keys and the genesis (npm run ledger:genesis -- --new-validators), made once and kept in
#      <state-dir>/core.ledger.parameters.json (mode 0600; never made again: the chain's genesis is fixed);
#   2. the resource group and infra/core.json (incremental);
#   3. the core's identity: Contributor and Role Based Access Control Administrator on the member subscription
#      (members are deployed there);
#   4. the API's app registration, its app roles and the core's Graph permissions (npm run azure:app-registration),
#      whose settings go back into core.json (<state-dir>/core.registration.parameters.json);
#   5. the release package (npm run package) published into the core's app (OneDeploy: the app's deployment
#      container, which the core also hands each member).
# Needs the Azure CLI signed in (az login) as someone who may create resources and role assignments in the
# subscription and app registrations in the tenant. Nothing secret is printed.
set -euo pipefail

usage() {
    sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

RG='' LOCATION='' PARAMETERS='' CHAIN_ID='' VALIDATORS=4 TREASURY='' MEMBER_SUB='' INVITE_URL='' STATE_DIR='.azure'
while [ $# -gt 0 ]; do
    case "$1" in
    --resource-group) RG="$2" ;;
    --location) LOCATION="$2" ;;
    --parameters) PARAMETERS="$2" ;;
    --chain-id) CHAIN_ID="$2" ;;
    --validators) VALIDATORS="$2" ;;
    --treasury) TREASURY="$2" ;;
    --member-subscription) MEMBER_SUB="$2" ;;
    --invite-redirect-url) INVITE_URL="$2" ;;
    --state-dir) STATE_DIR="$2" ;;
    -h | --help) usage ;;
    *)
        echo "deploy: unknown option $1" >&2
        usage
        ;;
    esac
    shift 2 || usage
done
[ -n "$RG" ] && [ -n "$LOCATION" ] && [ -n "$PARAMETERS" ] && [ -n "$CHAIN_ID" ] || usage
# Paths as the caller gave them (npm runs scripts from the project root; INIT_CWD is where it was started).
absolute() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s/%s' "${INIT_CWD:-$PWD}" "$1" ;; esac; }
PARAMETERS=$(absolute "$PARAMETERS")
STATE_DIR=$(absolute "$STATE_DIR")
[ -f "$PARAMETERS" ] || { echo "deploy: no parameter file $PARAMETERS" >&2; exit 2; }
cd "$(dirname "$0")/../.."

step() { printf '\n== %s\n' "$*" >&2; }

command -v az > /dev/null || { echo 'deploy: the Azure CLI (az) is not installed' >&2; exit 2; }
SUBSCRIPTION=$(az account show --query id -o tsv) || { echo 'deploy: sign in first (az login)' >&2; exit 2; }
MEMBER_SUB=${MEMBER_SUB:-$SUBSCRIPTION}
mkdir -p "$STATE_DIR"
LEDGER="$STATE_DIR/core.ledger.parameters.json"
REGISTRATION="$STATE_DIR/core.registration.parameters.json"

step "1/5 validator keys and genesis ($LEDGER)"
if [ -f "$LEDGER" ]; then
    echo "kept: $LEDGER exists (the chain's genesis does not change)" >&2
else
    npm run -s ledger:genesis -- --chain-id "$CHAIN_ID" --new-validators "$VALIDATORS" ${TREASURY:+--alloc "$TREASURY"} \
        --out "$STATE_DIR/genesis.json" --parameters-out "$LEDGER" > /dev/null
    chmod 600 "$LEDGER"
fi

deploy_core() {
    local extra=()
    [ -f "$REGISTRATION" ] && extra=(-p "@$REGISTRATION")
    az deployment group create -g "$RG" -n flexchange-core -f infra/core.json \
        -p "@$PARAMETERS" -p "@$LEDGER" -p chainId="$CHAIN_ID" -p memberSubscriptionId="$MEMBER_SUB" "${extra[@]}" -o none
}
output() { az deployment group show -g "$RG" -n flexchange-core --query "properties.outputs.$1.value" -o tsv; }

step "2/5 resource group $RG and infra/core.json"
az group create -n "$RG" -l "$LOCATION" -o none
deploy_core
PRINCIPAL=$(output principalId)
APP=$(output functionAppName)
HOST=$(output functionAppHostName)
echo "core app $APP (identity $PRINCIPAL)" >&2

step "3/5 the core's roles on the member subscription $MEMBER_SUB"
for role in Contributor 'Role Based Access Control Administrator'; do
    # A role already assigned is no change (az answers with the existing assignment).
    az role assignment create --assignee-object-id "$PRINCIPAL" --assignee-principal-type ServicePrincipal \
        --role "$role" --scope "/subscriptions/$MEMBER_SUB" -o none
done

step '4/5 the API app registration and the core'"'"'s Graph permissions'
npm run -s azure:app-registration -- --core-principal-id "$PRINCIPAL" ${INVITE_URL:+--invite-redirect-url "$INVITE_URL"} \
    --parameters-out "$REGISTRATION.tmp" > /dev/null
mv "$REGISTRATION.tmp" "$REGISTRATION"
deploy_core

step "5/5 the release package into $APP"
npm run -s package > /dev/null
az functionapp deployment source config-zip -g "$RG" -n "$APP" --src build/flexchange.zip -o none

printf '\nThe core runs at https://%s/api (health: curl https://%s/api/health).\n' "$HOST" "$HOST" >&2
printf 'Keep %s offline or delete it: the validator keys are in the core'"'"'s vault.\n' "$LEDGER" >&2
