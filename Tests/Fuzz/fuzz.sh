#!/usr/bin/env bash
# Runs the libFuzzer targets (built by Tests/Fuzz/build.sh into .build-fuzz/).
#   Tests/Fuzz/fuzz.sh run SECONDS [target...]   fuzz each target for SECONDS (`make fuzz`); the corpus
#                                                grows in .build-fuzz/corpus/<target>, seeded from
#                                                Tests/Fuzz/corpus/<target>
#   Tests/Fuzz/fuzz.sh ci [target...]            replay Tests/Fuzz/crashes/<target>/* (they must not
#                                                crash any more), then the committed corpus and
#                                                FUZZ_CI_SECONDS (default 20) of mutation (`make fuzz-ci`)
# Crashes, timeouts and out-of-memory inputs are written to Tests/Fuzz/crashes/<target>/; the
# exit status is non-zero when any target failed. FUZZ_FLAGS adds libFuzzer flags (e.g. -use_value_profile=1).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${FUZZ_BUILD:-.build-fuzz}
ALL_TARGETS=(npy idx losses_csv trainer_state class_names run_scanner)
mode=${1:?usage: fuzz.sh run SECONDS [target...] | fuzz.sh ci [target...]}; shift
if [[ $mode == run ]]; then seconds=${1:?usage: fuzz.sh run SECONDS [target...]}; shift; else seconds=${FUZZ_CI_SECONDS:-20}; fi
targets=("${@:-${ALL_TARGETS[@]}}")
read -r -a extra <<<"${FUZZ_FLAGS:-}"
# Swift's own crash backtracer would run before libFuzzer's handler (and its helper may outlive
# the target): off, so that libFuzzer reports the stack and writes the crashing input.
export SWIFT_BACKTRACE=${SWIFT_BACKTRACE:-enable=no}

Tests/Fuzz/build.sh "${targets[@]}" || exit 2
mkdir -p "$OUT/logs"
# -rss_limit_mb: far above what any input of -max_len bytes may make a parser allocate;
# -timeout: a parser stuck on one small input is a bug.
flags=(-max_len=4096 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
# run_target TARGET: one target's run; its summary goes to $OUT/logs/TARGET.result, the status is its own.
run_target() {
    local target=$1 crashes=Tests/Fuzz/crashes/$1 log=$OUT/logs/$1.log corpus status t0=$SECONDS
    local result=$OUT/logs/$target.result
    mkdir -p "$crashes"
    if [[ $mode == ci ]]; then
        local files=() f
        for f in "$crashes"/*; do [[ -f $f && $f != *.md ]] && files+=("$f"); done
        if (( ${#files[@]} )) && ! "$OUT/bin/$target" "${flags[@]}" "${files[@]}" >"$log.replay" 2>&1; then
            { echo "fuzz: $target FAILED: a reproducer in $crashes still fails (log: $log.replay):"
              grep -E 'Running: |ERROR: |SUMMARY: |Fatal error' "$log.replay" | tail -4 | sed 's/^/    /'; } >"$result"
            return 1
        fi
        corpus=$OUT/ci-corpus/$target
        rm -rf "$corpus"
    else
        corpus=$OUT/corpus/$target
    fi
    mkdir -p "$corpus"
    "$OUT/bin/$target" "${flags[@]}" "${extra[@]}" -max_total_time="$seconds" -artifact_prefix="$crashes/" \
        "$corpus" "Tests/Fuzz/corpus/$target" >"$log" 2>&1
    status=$?
    local stats
    stats=$(grep -E '^#[0-9]+' "$log" | tail -1 | sed -E 's/^#([0-9]+)\s+\w+\s+/\1 runs, /; s/ (lim|L|MS|rss): [^ ]*//g')
    { echo "fuzz: $target: ${stats:-no stats} ($((SECONDS - t0)) s, log: $log)"
      if (( status != 0 )); then
          echo "fuzz: $target FAILED (exit $status):"
          grep -E 'ERROR: |SUMMARY: |Fatal error|^ *#[0-9]+ 0x.* in |Test unit written' "$log" | head -20 | sed 's/^/    /'
      fi; } >"$result"
    return $status
}

# Up to FUZZ_JOBS targets (default: the number of cores) at once, each on one core.
jobs_max=${FUZZ_JOBS:-$(nproc)}
declare -A pid_of
start=$SECONDS
for target in "${targets[@]}"; do
    while (( $(jobs -rp | wc -l) >= jobs_max )); do wait -n || true; done
    run_target "$target" &
    pid_of[$target]=$!
done
failed=()
for target in "${targets[@]}"; do
    wait "${pid_of[$target]}" || failed+=("$target")
    cat "$OUT/logs/$target.result"
done
echo "fuzz: $mode done in $((SECONDS - start)) s; ${#failed[@]} target(s) failed${failed:+: ${failed[*]}}"
(( ${#failed[@]} == 0 ))
