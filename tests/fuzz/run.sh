#!/bin/sh
# run.sh - the running half of `make fuzz`, once the targets are built:
# replays the regression inputs (tests/fixtures/fuzz/), then fuzzes both
# targets at once, each for SECONDS, and prints what each did.  Corpora,
# logs and crash inputs stay under WORK.  Any crash, leak, sanitizer
# report, timeout (10 s per input) or memory blow-up (2 GB) fails it.
# Usage: tests/fuzz/run.sh SRCDIR WORK SECONDS
#   SRCDIR  the source tree (fixtures, seeds, dictionaries)
#   WORK    the fuzz build's directory: WORK/build/tests/fuzz holds the
#           targets; corpora go to WORK/corpus, logs to WORK/logs and crash
#           inputs to WORK/crashes
set -eu
src=$1 work=$2 seconds=$3
bin=$work/build/tests/fuzz
# fuzz_load's files go here; a crash leaves its file behind.
tmp=$(mktemp -d /dev/shm/cdm-fuzz.XXXXXX 2>/dev/null || mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM
export TMPDIR="$tmp"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

# The loader's seeds: every definition file among the fixtures, made anew
# each run (so that a removed fixture goes); the corpora grow across runs.
rm -rf "$work/seeds"
mkdir -p "$work/seeds/load" "$work/logs" \
    "$work/corpus/load" "$work/corpus/qmark" \
    "$work/crashes/load" "$work/crashes/qmark"
(cd "$src/tests/fixtures" && find . -name '*.ini' -type f) | while read -r f; do
    f=${f#./}
    cp "$src/tests/fixtures/$f" "$work/seeds/load/$(echo "$f" | tr / _)"
done

# Inputs that once failed, each run once (libFuzzer runs the files it is
# given and stops at the first failure).
for t in load qmark; do
    dir=$src/tests/fixtures/fuzz/$t
    [ -d "$dir" ] || continue
    if ! find "$dir" -type f -exec "$bin/fuzz_$t" -artifact_prefix="$work/crashes/$t/" {} + \
            >"$work/logs/$t.replay.log" 2>&1; then
        cat "$work/logs/$t.replay.log" >&2
        echo "make fuzz: fuzz_$t fails on a regression input in $dir (log above)" >&2
        exit 1
    fi
    echo "fuzz_$t: the $(find "$dir" -type f | wc -l) regression inputs in tests/fixtures/fuzz/$t pass"
done

# One target for $seconds; its log in $work/logs/NAME.log.  libFuzzer
# lets inputs grow past the largest seed (756 bytes for the loader) only
# after -len_control runs without progress, 100 * log(length) by default:
# fuzz_load stayed at 756 bytes for 64,000 runs, so it never met a line
# past iniparser's 1022-byte limit.  At 10 it gets there in about a
# minute, with more coverage.
fuzz() {
    name=$1 max_len=$2
    shift 2
    "$bin/fuzz_$name" -max_total_time="$seconds" -max_len="$max_len" \
        -len_control=10 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -dict="$src/tests/fuzz/$name.dict" \
        -artifact_prefix="$work/crashes/$name/" \
        "$work/corpus/$name" "$@" >"$work/logs/$name.log" 2>&1
}

echo "make fuzz: fuzz_load and fuzz_qmark for ${seconds} s each, at once (logs in $work/logs)"
fuzz load 65536 "$work/seeds/load" &
load=$!
fuzz qmark 4096 "$src/tests/fuzz/corpus/qmark" &
qmark=$!
failed=""
wait "$load" || failed="$failed load"
wait "$qmark" || failed="$failed qmark"

for t in load qmark; do
    log=$work/logs/$t.log
    # Coverage and corpus from the last status line, and libFuzzer's totals.
    last=$(grep -a '^#[0-9]' "$log" | tail -n 1 | grep -o 'cov: [0-9]* ft: [0-9]* corp: [^ ]*')
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    echo "fuzz_$t: ${runs:-?} runs, ${rate:-?} exec/s; $last"
done
[ -z "$failed" ] && exit 0
for t in $failed; do
    log=$work/logs/$t.log
    echo "---- fuzz_$t failed; from $log:" >&2
    # From the report's first line (a sanitizer's, libFuzzer's, or a broken
    # invariant of the target's) to the end; else the log's last lines.
    report=$(awk '/^==[0-9]+==|^fuzz_[a-z]+: |^ALARM|^SUMMARY/ { on = 1 } on' "$log")
    if [ -n "$report" ]; then
        printf '%s\n' "$report" >&2
    else
        tail -n 30 "$log" >&2
    fi
    echo "fuzz_$t: the input is in $work/crashes/$t/; once understood, keep it as tests/fixtures/fuzz/$t/<what-it-is> (see tests/fixtures/fuzz/README)" >&2
done
exit 1
