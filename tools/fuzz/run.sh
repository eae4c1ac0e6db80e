#!/usr/bin/env bash
# Runs cargo-fuzz (libFuzzer, nightly) on every target of fuzz/ for SECONDS
# each (default 60), one after another, each building on its corpus in
# fuzz/corpus/TARGET, then minimises each corpus (cargo fuzz cmin) so it
# stays small in the repository. A crash stops the run and leaves its input
# in fuzz/artifacts/TARGET/: fix the bug, then commit the input as a
# regression test of the function it broke.
# Appends one line per target to tools/fuzz/hours.tsv (date, target,
# seconds, runs, outcome, cpu seconds) so the running total per target is on
# record. The total counts CPU seconds, not wall seconds, so a run that
# shared its core (niced under a build) is counted for what it did.
#
#   tools/fuzz/run.sh                 # every target, 60 s each
#   SECONDS_EACH=1800 tools/fuzz/run.sh archive_inspect
#
# Needs the nightly toolchain and `cargo install cargo-fuzz`.
set -euo pipefail
cd "$(dirname "$0")/../../fuzz"
EACH=${SECONDS_EACH:-60}
TARGETS=${*:-$(cargo +nightly fuzz list)}
HOURS=../tools/fuzz/hours.tsv
# User + system seconds of the children this shell has waited for (`times`
# in this shell: in a $(…) subshell it would count the subshell's children).
TIMES=$(mktemp)
children_cpu() {
    times >"$TIMES"
    CPU=$(tail -1 "$TIMES" | awk '{ split($1, u, "m"); split($2, s, "m"); printf "%d", u[1] * 60 + u[2] + s[1] * 60 + s[2] }')
}
# Build first, so a target's CPU seconds are fuzzing, not compiling.
cargo +nightly fuzz build >&2
for t in $TARGETS; do
    mkdir -p "corpus/$t"
    log=$(mktemp)
    echo "fuzzing $t for $EACH s" >&2
    children_cpu
    cpu0=$CPU
    if cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$EACH" -rss_limit_mb=2048 2>"$log"; then
        outcome=ok
    else
        outcome=crash
    fi
    children_cpu
    cpu=$((CPU - cpu0))
    runs=$(grep -o 'Done [0-9]* runs' "$log" | tail -1 | awk '{print $2}' || true)
    # A target that did not build (sources changed under a long run) ran nothing.
    if [ -z "$runs" ] && grep -q 'error: could not compile' "$log"; then
        tail -20 "$log" >&2
        echo "$t did not build; nothing recorded" >&2
        exit 1
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$t" "$EACH" "${runs:-?}" "$outcome" "$cpu" >>"$HOURS"
    if [ "$outcome" = crash ]; then
        tail -40 "$log" >&2
        echo "crash in $t: see fuzz/artifacts/$t/" >&2
        exit 1
    fi
    cargo +nightly fuzz cmin "$t" "corpus/$t" >/dev/null 2>&1 || true
    rm -f "$log"
done
# Lines before the cpu column ran on a core of their own: their wall time is
# their CPU time.
awk -F'\t' 'NR > 1 {s[$2] += ($6 == "" ? $3 : $6)} END {for (t in s) printf "%-16s %6.1f CPU min in all\n", t, s[t] / 60}' "$HOURS" | sort >&2
