#!/usr/bin/env bash
# Installs the Node packages of the CDK app (cdk/node_modules) and of the browser tests
# (tests/browser/node_modules) exactly as their package-lock.json files pin them. Does
# nothing for a folder whose packages are up to date.
set -euo pipefail
cd "$(dirname "$0")/.."

node -e 'if (parseInt(process.versions.node) < 20) process.exit(1)' 2>/dev/null \
  || { echo "setup-node: needs Node.js >= 20 with npm (for the CDK app in cdk/ and the browser tests)" >&2; exit 1; }

for folder in cdk tests/browser; do
  stamp=$folder/node_modules/.package-lock.sha256
  wanted=$(sha256sum "$folder/package-lock.json" | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ]; then
    continue
  fi
  echo "setup-node: installing the packages of $folder into $folder/node_modules (once, under a minute)..." >&2
  (cd "$folder" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$wanted" > "$stamp"
done
