#!/usr/bin/env bash
# Installs Debian's nginx and squid for the proxy compatibility tests (test/e2e/proxy/*). The tests start
# their own instances (own config, own loopback port, temporary prefix): this script only makes the
# binaries available. Idempotent: installs nothing that is already there, and stops the system
# services a package install may start, so no daemon is left listening on ports 80 / 3128.
set -euo pipefail

as_root=()
if [ "$(id -u)" -ne 0 ]; then
  as_root=(sudo)
fi

missing=()
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || missing+=(nginx)
[ -x /usr/sbin/squid ] || command -v squid >/dev/null 2>&1 || missing+=(squid)

if [ "${#missing[@]}" -eq 0 ]; then
  echo "proxies.sh: nginx and squid already installed"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
# policy-rc.d 101 keeps the packages' maintainer scripts from starting system daemons we never use.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | "${as_root[@]}" tee "$policy" >/dev/null
  "${as_root[@]}" chmod 755 "$policy"
  created_policy=1
fi
cleanup() { if [ "$created_policy" -eq 1 ]; then "${as_root[@]}" rm -f "$policy"; fi; }
trap cleanup EXIT

"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "proxies.sh: installed ${missing[*]} ($(/usr/sbin/nginx -v 2>&1); $(/usr/sbin/squid -v 2>/dev/null | head -n 1))"
