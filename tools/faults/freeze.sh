#!/usr/bin/env bash
# SIGSTOP of one of two writers (one bucket on moto, one Postgres) at
# varying moments of the fault suite's mixed stream, ROUNDS times (50): the
# other takes the writes over within the lease plus 5 s, every acknowledged
# write is there once after SIGCONT, and the frozen node writes again.
# Prints the takeover's p50 and max (tests/testsuite/writers.rs,
# a_frozen_writer_holds_the_other_up_no_longer_than_its_lease).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CAIRN_FREEZE_ROUNDS="${ROUNDS:-50}"
exec timeout "${STEP_TIMEOUT:-3600}" cargo test --test testsuite \
  writers::a_frozen_writer_holds_the_other_up_no_longer_than_its_lease -- --nocapture
