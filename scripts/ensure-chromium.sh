#!/usr/bin/env bash
# Debian's Chromium for the browser tests (npm run test:browser); playwright-core drives it.
# Installs it from Debian's packages when it is missing: a test tool's own browser download
# is not used (it reaches outside the npm registry and Debian's packages).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
run() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else echo "ensure-chromium: root (or sudo) is needed to install Debian's chromium" >&2; exit 1; fi; }
echo "ensure-chromium: installing Debian's chromium" >&2
run env DEBIAN_FRONTEND=noninteractive apt-get update -qq
run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
/usr/bin/chromium --version >&2
