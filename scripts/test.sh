#!/usr/bin/env bash
# The whole test suite: unit and integration tests on a -Werror build, then
# the same suite on an AddressSanitizer + UBSan build. Installs the Debian
# packages the tests need when they are missing. Ends with one summary line.
#   SKIP_SANITIZE=1 scripts/test.sh   only the plain build
# SPDX-License-Identifier: Apache-2.0
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --test || exit 1

passed=0
failed=0
skipped=0
if ! scripts/check.sh; then
  failed=$((failed + 1))
fi
run_suite() { # name build-dir cmake-args...
  local name=$1 dir=$2
  shift 2
  echo "== $name build ($dir)"
  if ! cmake -S . -B "$dir" -G Ninja -DWERROR=ON "$@" >/dev/null ||
    ! ninja -C "$dir"; then
    echo "== $name build FAILED"
    failed=$((failed + 1))
    return
  fi
  local log="$dir/ctest.log"
  ctest --test-dir "$dir" --output-on-failure --timeout 900 2>&1 | tee "$log"
  local p f s
  p=$(grep -cE '^ *[0-9]+/[0-9]+ Test +#[0-9]+: .* Passed' "$log" || true)
  # ctest's "***Skipped" (a test exiting 77: its server is not installed,
  # e.g. mongod) is neither a pass nor a failure; it is counted and named.
  f=$(grep -E '^ *[0-9]+/[0-9]+ Test +#[0-9]+: .*(\*\*\*|Failed|Timeout|Not Run)' "$log" |
    grep -vc '\*\*\*Skipped' || true)
  s=$(grep -cE '^ *[0-9]+/[0-9]+ Test +#[0-9]+: .*\*\*\*Skipped' "$log" || true)
  passed=$((passed + p))
  failed=$((failed + f))
  skipped=$((skipped + s))
  if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
    echo "== $name: no test ran"
    failed=$((failed + 1))
  fi
}

run_suite plain build -DCMAKE_BUILD_TYPE=RelWithDebInfo
if [ "${SKIP_SANITIZE:-0}" != 1 ]; then
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp:print_suppressions=0 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_suite sanitize build-asan -DCMAKE_BUILD_TYPE=Debug -DSANITIZE=ON
fi
echo "tests: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
