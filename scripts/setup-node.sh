#!/usr/bin/env bash
# Installs the CDK app's Node packages (cdk/node_modules) exactly as cdk/package-lock.json
# pins them. Does nothing when they are up to date.
set -euo pipefail
cd "$(dirname "$0")/../cdk"

node -e 'if (parseInt(process.versions.node) < 20) process.exit(1)' 2>/dev/null \
  || { echo "setup-node: needs Node.js >= 20 with npm (for the CDK app in cdk/)" >&2; exit 1; }

stamp=node_modules/.package-lock.sha256
wanted=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ]; then
  exit 0
fi
echo "setup-node: installing the CDK app's packages into cdk/node_modules (once, under a minute)..." >&2
npm ci --no-audit --no-fund --loglevel=error
echo "$wanted" > "$stamp"
