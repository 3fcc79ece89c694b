#!/usr/bin/env bash
# Source checks: the C library calls our style bans outside
# src/common/alloc.c (use the cp_* wrappers instead).
# SPDX-License-Identifier: Apache-2.0
set -euo pipefail
cd "$(dirname "$0")/.."
banned='(^|[^a-zA-Z0-9_.>])(malloc|calloc|realloc|free|strdup|strndup|sprintf|vsprintf|strcpy|strcat|strtok|atoi|atol|gets)\s*\('
hits=$(grep -rnE "$banned" src/ | grep -v '^src/common/alloc.c' |
  grep -vE '^\S+:\s*(/\*|\*)' || true)
if [ -n "$hits" ]; then
  echo "check: banned C library calls (use cp_* from src/common/alloc.h):"
  echo "$hits"
  exit 1
fi
echo "check: no banned calls"
