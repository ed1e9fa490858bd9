#!/usr/bin/env bash
# Installs Debian's chromium for the browser end-to-end test (test/client/browser-demo.test.ts).
# Idempotent: does nothing when `chromium` is already on PATH.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
  echo "browser.sh: chromium already installed at $(command -v chromium)"
  exit 0
fi

as_root=()
if [ "$(id -u)" -ne 0 ]; then
  as_root=(sudo)
fi

export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends chromium >/dev/null
echo "browser.sh: installed $(chromium --version 2>/dev/null || echo chromium) at $(command -v chromium)"
