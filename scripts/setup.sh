#!/usr/bin/env bash
# Installs every Debian 12 package recstream's build, tests and demo need.
# Idempotent: packages already present are left alone. Run as root.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config clang libclang-rt-14-dev
  librdkafka-dev libhiredis-dev libmsgpack-dev libopenblas-dev
  libinih-dev libjansson-dev libcmocka-dev libmicrohttpd-dev libxxhash-dev
  redis-server python3 python3-yaml
  openjdk-17-jre-headless maven
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$pkg")
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "setup: missing packages: ${missing[*]}; run this script as root" >&2
  exit 1
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
