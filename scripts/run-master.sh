#!/usr/bin/env bash
# Builds kontena-master and runs it on its embedded SQLite store, installing
# the Debian packages it needs when they are missing. Every setting comes
# from the environment (see README.md); the data lives in ./data unless
# KONTENA_DATA_DIR says otherwise. Extra arguments go to kontena-master.
# SPDX-License-Identifier: Apache-2.0
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build kontena-master kontena >/dev/null
exec ./build/kontena-master "$@"
