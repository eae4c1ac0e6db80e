#!/usr/bin/env sh
# Prints a CARGO_HOME config.toml that replaces crates.io with the sparse
# index at $1 (a registry's base URL), without retries: the benchmarks'
# cargo peers talk only to the server under test.
cat <<TOML
[source.crates-io]
replace-with = "bench"

[source.bench]
registry = "sparse+$1/index/"

[net]
retry = 0
TOML
