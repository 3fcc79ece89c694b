#!/usr/bin/env bash
# Installs the Debian 12 packages kontena needs, only those missing.
#   scripts/deps.sh          build and run the master
#   scripts/deps.sh --test   also what the test suite needs
# SPDX-License-Identifier: Apache-2.0
set -euo pipefail

build_pkgs=(build-essential cmake ninja-build pkg-config
  libh2o-dev libwslay-dev libuv1-dev libjansson-dev libmsgpack-dev
  libsodium-dev libcurl4-openssl-dev libwebsockets-dev libsqlite3-dev
  libssl-dev libyaml-dev libpq-dev libmongoc-dev zlib1g-dev)
test_pkgs=(libcmocka-dev python3 curl nginx wrk clang libclang-rt-14-dev
  iproute2 util-linux python3-yaml openssl systemd postgresql)

pkgs=("${build_pkgs[@]}")
if [ "${1:-}" = "--test" ]; then
  pkgs+=("${test_pkgs[@]}")
fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "deps: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" != 0 ]; then
  sudo=sudo
fi
$sudo apt-get update -q >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q \
  --no-install-recommends "${missing[@]}" >&2
