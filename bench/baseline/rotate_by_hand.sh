#!/usr/bin/env bash
# The runbook's "Secret Rotation" section, by hand: the commands an operator types, one after
# the other, against the sandbox's staging environment (Kubernetes Secrets).
#
#   rotate_by_hand.sh api-key       Rotate API Keys (OpenAI)
#   rotate_by_hand.sh db-password   Rotate Database Password (single user, as the runbook does)
#
# Endpoints and credential files come from the environment (bench/baseline.py sets them from
# sandbox.json): KUBECTL KUBECONFIG NS OPENAI_URL OPENAI_PROJECT OPENAI_ADMIN_KEY_FILE PSQL
# PGHOST PGPORT PGUSER PGADMIN_PASSWORD_FILE.
#
# Where the runbook puts a secret on a command line (kubectl patch -p, curl -H), this script
# passes it through a file of mode 0600 instead (--patch-file, -H @file), so the baseline does
# not leak more than an operator following the runbook carefully would. The runbook's own
# ALTER USER ... WITH PASSWORD '...' still sends the password in plain SQL: it lands in the
# server's statement log (log_statement=all), as it would in production.
set -euo pipefail
umask 077
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
K() { "$KUBECTL" --kubeconfig "$KUBECONFIG" -n "$NS" "$@"; }
step() { printf '%s %s\n' "$(date +%s.%N)" "$*" >&2; }
ADMIN_HEADER="$WORK/admin.header"
printf 'Authorization: Bearer %s\n' "$(cat "$OPENAI_ADMIN_KEY_FILE")" > "$ADMIN_HEADER"
API="$OPENAI_URL/v1/organization/projects/$OPENAI_PROJECT"

restart_and_verify() {
  step "3. Restart pods: kubectl rollout restart deployment/backend"
  K rollout restart deployment/backend >/dev/null
  K rollout status deployment/backend --timeout=120s >/dev/null
  step "4. Verify: kubectl logs deployment/backend | grep 'API initialized'"
  # kubectl picks one pod of the Deployment, possibly one of the old ReplicaSet that is still
  # listed while it terminates and is gone when its log is asked for: then ask again
  for _ in 1 2 3; do
    if K logs deployment/backend 2>/dev/null | grep -q "API initialized"; then return 0; fi
    sleep 0.2
  done
  return 1
}

rotate_api_key() {
  step "0. Read the old key (kubectl get secret api-keys)"
  K get secret api-keys -o jsonpath='{.data.openai}' | base64 -d > "$WORK/old"
  step "1. Generate new key at provider (curl POST service_accounts)"
  curl -sS --fail -H @"$ADMIN_HEADER" -H 'Content-Type: application/json' \
    -d "{\"name\": \"by-hand-$(date +%s)\"}" "$API/service_accounts" > "$WORK/created.json"
  jq -j .api_key.value "$WORK/created.json" > "$WORK/new"
  step "2. Update secret (kubectl patch secret api-keys)"
  printf '{"data":{"openai":"%s"}}' "$(base64 -w0 < "$WORK/new")" > "$WORK/patch.json"
  K patch secret api-keys --type merge --patch-file "$WORK/patch.json" >/dev/null
  restart_and_verify
  step "5. Revoke old key at provider (curl DELETE api_keys/<id>)"
  curl -sS --fail -H @"$ADMIN_HEADER" "$API/api_keys?limit=100" > "$WORK/keys.json"
  OLD_ID=$(jq -r --rawfile old "$WORK/old" '.data[]
      | select(.redacted_value as $r | ($r | split("...")) as $p
               | ($old | startswith($p[0])) and ($old | endswith($p[1])))
      | .id' "$WORK/keys.json" | head -1)
  curl -sS --fail -X DELETE -H @"$ADMIN_HEADER" "$API/api_keys/$OLD_ID" >/dev/null
  step "done"
}

rotate_db_password() {
  step "0. Read the login (kubectl get secret db-credentials)"
  DB_ROLE=$(K get secret db-credentials -o jsonpath='{.data.username}' | base64 -d)
  step "1. Create new password (openssl rand -base64 32)"
  NEW_PASS=$(openssl rand -base64 32)
  step "2. Update in database (psql: ALTER USER ... WITH PASSWORD)"
  PGPASSWORD=$(cat "$PGADMIN_PASSWORD_FILE") "$PSQL" -q -v ON_ERROR_STOP=1 \
    -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -d postgres >/dev/null <<SQL
ALTER USER "$DB_ROLE" WITH PASSWORD '$NEW_PASS';
SQL
  step "3. Update secret (kubectl patch secret db-credentials)"
  printf '{"data":{"password":"%s"}}' "$(printf '%s' "$NEW_PASS" | base64 -w0)" \
    > "$WORK/patch.json"
  K patch secret db-credentials --type merge --patch-file "$WORK/patch.json" >/dev/null
  step "4. Restart app (kubectl rollout restart deployment/backend)"
  K rollout restart deployment/backend >/dev/null
  K rollout status deployment/backend --timeout=120s >/dev/null
  step "done"
}

case "${1:-}" in
  api-key) rotate_api_key ;;
  db-password) rotate_db_password ;;
  *) echo "usage: $0 api-key|db-password" >&2; exit 2 ;;
esac
