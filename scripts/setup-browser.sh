#!/usr/bin/env bash
# Makes sure headless Chromium is there for the dashboard's browser tests: $CHROMIUM if set,
# else `chromium` on the PATH, else Debian's `chromium` package installed with apt-get when
# this runs as root. Prints the browser's path; says how to install it where it cannot.
set -euo pipefail

find_chromium() {
  if [ -n "${CHROMIUM:-}" ]; then
    [ -x "$CHROMIUM" ] && { echo "$CHROMIUM"; return 0; }
    echo "setup-browser: CHROMIUM=$CHROMIUM is not an executable" >&2; exit 1
  fi
  command -v chromium || command -v chromium-browser || command -v google-chrome || return 1
}

if find_chromium; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "setup-browser: installing Debian's chromium package (once, a minute or two)..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends chromium >&2
  find_chromium && exit 0
fi
cat >&2 <<'HOW'
setup-browser: the dashboard's browser tests need Chromium and cannot install it here.
  Debian/Ubuntu: sudo apt-get install chromium     (then run the tests again)
  elsewhere:     install Chrome or Chromium and set CHROMIUM=/path/to/the/browser
HOW
exit 1
