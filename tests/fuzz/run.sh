#!/usr/bin/env bash
# Builds every libFuzzer target (tests/fuzz/fuzz_*.c) with clang and runs
# each for FUZZ_SECONDS over its seed corpus.
#
#   tests/fuzz/run.sh                  # all targets, 30 s each
#   FUZZ_SECONDS=300 tests/fuzz/run.sh fuzz_json_body
#
# Environment:
#   FUZZ_SECONDS   seconds per target (30)
#   FUZZ_BUILD_DIR build directory (<repo>/build-fuzz)
#   FUZZ_WORK_DIR  scratch dir for new inputs and crash files
#                  (default: a fresh mktemp dir, kept and printed)
#   FUZZ_JOBS      parallel fuzzing processes per target (1)
#   FUZZ_ARGS      extra libFuzzer flags, e.g. "-detect_leaks=0 -max_len=4096"
#   CC             compiler (clang; clang-14 works)
#   ASAN_OPTIONS, UBSAN_OPTIONS, LSAN_OPTIONS  passed through. To keep
#                  fuzzing past a known leak while still catching new ones:
#                    ASAN_OPTIONS=fast_unwind_on_malloc=0 \
#                    LSAN_OPTIONS=suppressions=FILE tests/fuzz/run.sh
#                  (jansson has no frame pointers, so suppressions naming
#                  our functions need the slow unwinder)
#
# The checked-in corpus (tests/fuzz/corpus/<name without fuzz_>/) is only
# read: new inputs go to $FUZZ_WORK_DIR/<name>/corpus, crash/leak/timeout
# reproducers to $FUZZ_WORK_DIR/<name>/artifacts. Exits non-zero when any
# target crashes, leaks or times out; reproduce with
#   build-fuzz/<target> <artifact>
# SPDX-License-Identifier: Apache-2.0
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${FUZZ_BUILD_DIR:-$src/build-fuzz}
seconds=${FUZZ_SECONDS:-30}
jobs=${FUZZ_JOBS:-1}
export CC=${CC:-clang}

if ! command -v "$CC" >/dev/null; then
    echo "run.sh: $CC not found (apt install clang libclang-rt-14-dev)" >&2
    exit 2
fi

# The kmaster/kcommon libraries get coverage instrumentation
# (fuzzer-no-link) and the sanitizers; SANITIZE=ON turns off FORTIFY and
# makes UBSan findings fatal so libFuzzer records them as crashes.
san="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all"
gen=()
if command -v ninja >/dev/null; then
    gen=(-G Ninja)
fi
if [[ ! -f $build/CMakeCache.txt ]]; then
    cmake -S "$src" -B "$build" "${gen[@]}" -DFUZZ=ON -DSANITIZE=ON \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER="$CC" \
        "-DCMAKE_C_FLAGS=$san" >/dev/null
else
    cmake -S "$src" -B "$build" -DFUZZ=ON >/dev/null
fi

# Targets: the arguments, else every tests/fuzz/fuzz_*.c.
targets=()
if (($# > 0)); then
    for t in "$@"; do
        t=$(basename "$t" .c)
        targets+=("$t")
    done
else
    for f in "$here"/fuzz_*.c; do
        [[ -e $f ]] || continue
        targets+=("$(basename "$f" .c)")
    done
fi
if ((${#targets[@]} == 0)); then
    echo "run.sh: no fuzz targets in $here" >&2
    exit 2
fi
cmake --build "$build" --target "${targets[@]}"

work=${FUZZ_WORK_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/kontena-fuzz.XXXXXX")}
mkdir -p "$work"
echo "run.sh: scratch dir $work"

failed=()
for t in "${targets[@]}"; do
    name=${t#fuzz_}
    seeds=$here/corpus/$name
    out=$work/$name
    mkdir -p "$out/corpus" "$out/artifacts"
    dirs=("$out/corpus")
    if [[ -d $seeds ]]; then
        dirs+=("$seeds")
    else
        echo "run.sh: $t: no seed corpus at $seeds" >&2
    fi
    echo "== $t: ${seconds}s, corpus ${dirs[*]}"
    extra=()
    if [[ -n ${FUZZ_ARGS:-} ]]; then
        read -r -a extra <<<"$FUZZ_ARGS"
    fi
    # -detect_leaks=0 must also stop ASan's at-exit leak report, or the
    # leaks of every run add up into one "crash" when the process ends.
    leaks=1
    if [[ " ${extra[*]} " == *" -detect_leaks=0 "* ]]; then
        leaks=0
    fi
    jobargs=()
    if ((jobs > 1)); then
        jobargs=(-fork="$jobs" -ignore_crashes=0)
    fi
    # New inputs are written to the first corpus dir only: the scratch one.
    # The full log goes to $out/log; the terminal skips per-input lines.
    set +e
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=$leaks} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
        "$build/$t" -max_total_time="$seconds" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$out/artifacts/" "${jobargs[@]}" "${extra[@]}" \
        "${dirs[@]}" 2>&1 | tee "$out/log" |
        grep --line-buffered -Ev '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)'
    rc=${PIPESTATUS[0]}
    set -e
    if ((rc != 0)) || compgen -G "$out/artifacts/*" >/dev/null; then
        echo "run.sh: $t FAILED (exit $rc); reproducers:" >&2
        # Replay each one with the slow unwinder so leak stacks go through
        # jansson (built without frame pointers) into our sources.
        for a in "$out"/artifacts/*; do
            [[ -f $a && $a != *.txt ]] || continue
            env -u LSAN_OPTIONS ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0 \
            UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
                "$build/$t" "$a" >"$a.txt" 2>&1 || true
            echo "  $a" >&2
            grep -E 'SUMMARY:' "$a.txt" | head -n 1 | sed 's/^/    /' >&2
            # Distinct first frames in our own sources.
            grep -Eo ' in [A-Za-z0-9_]+ [^ ]*/(src|tests)/[^ ]+' "$a.txt" |
                sed 's/^ in //' | awk '!seen[$0]++' | head -n 6 |
                sed 's/^/      at /' >&2
        done
        failed+=("$t")
    else
        echo "run.sh: $t ok ($(find "$out/corpus" -type f | wc -l) new inputs)"
    fi
done

if ((${#failed[@]} > 0)); then
    echo "run.sh: FAILED: ${failed[*]} (logs and reproducers under $work)" >&2
    exit 1
fi
echo "run.sh: all ${#targets[@]} target(s) ran ${seconds}s without a finding"
