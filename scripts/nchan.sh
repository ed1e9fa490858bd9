#!/usr/bin/env bash
# Installs Debian's nginx and libnginx-mod-nchan for the side-by-side benchmarks (benchmarks/peers).
# Idempotent: does nothing when the Nchan module is already installed. Prints the module's path.
# The benchmarks never use the system nginx service: they start nginx with their own prefix,
# configuration and loopback port, and stop it when they finish.
set -euo pipefail

module_path() {
  dpkg -L libnginx-mod-nchan 2>/dev/null | grep -E '/ngx_nchan_module\.so$' | head -n 1
}

if [ -z "$(module_path)" ] || ! command -v nginx >/dev/null 2>&1; then
  as_root=()
  if [ "$(id -u)" -ne 0 ]; then
    as_root=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  echo "nchan.sh: installing nginx libnginx-mod-nchan (apt-get)" >&2
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" apt-get install -y -qq --no-install-recommends nginx libnginx-mod-nchan >/dev/null
fi

module="$(module_path)"
if [ -z "$module" ]; then
  echo "nchan.sh: libnginx-mod-nchan is installed but ngx_nchan_module.so was not found" >&2
  exit 1
fi
echo "$module"
