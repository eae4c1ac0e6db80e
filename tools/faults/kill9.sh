#!/usr/bin/env bash
# The kill -9 fault run at full length: the mixed stream of writes from 8
# concurrent clients (tests/testsuite/crash.rs, a_mixed_stream_of_writes_survives_kill_9),
# killed ROUNDS times (100 by default; CI runs 12), and the publish-only
# stream; then the same mixed stream on two writers over one bucket and one
# Postgres (tests/testsuite/writers.rs, one of them killed each round; CI runs 4).
# Prints the rounds run and the writes acknowledged; fails on any lost or
# half-present write or an fsck finding after a restart.
#
#   tools/faults/kill9.sh
#   ROUNDS=30 tools/faults/kill9.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export CAIRN_CRASH_ROUNDS=${ROUNDS:-100}
timeout "${STEP_TIMEOUT:-3600}" cargo test --test testsuite crash:: -- --nocapture --test-threads 1
exec timeout "${STEP_TIMEOUT:-3600}" cargo test --test testsuite writers::the_mixed_stream -- --nocapture
