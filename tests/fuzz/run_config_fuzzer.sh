#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs the libFuzzer config fuzzer (build-fuzz/insa_config_fuzzer, -DINSA_FUZZ=ON) for
# SECONDS (default 60) over a scratch copy of tests/fuzz/corpus/config: every seed first
# (real configs, hostile ones and each crash found so far, as regressions), then
# mutations. Fails on any crash, leak, timeout or error message that is not one located
# line; the input is left in build-fuzz/artifacts/ — fix it and add it to the corpus.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-60}
fuzzer=build-fuzz/insa_config_fuzzer
[ -x "$fuzzer" ] || { echo "run_config_fuzzer: build it first: CC=clang CXX=clang++ cmake -S . -B build-fuzz -DINSA_FUZZ=ON && cmake --build build-fuzz --target insa_config_fuzzer" >&2; exit 1; }
work=$(mktemp -d /tmp/insa-fuzz-corpus.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp tests/fuzz/corpus/config/* "$work/"
mkdir -p build-fuzz/artifacts
# -timeout: one config must be judged within 10 s (a 1 MiB config takes about 2 s).
# The full log (one line per new input) goes to build-fuzz/config_fuzzer.log.
log=build-fuzz/config_fuzzer.log
if "$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -dict=tests/fuzz/config.dict -artifact_prefix=build-fuzz/artifacts/ -print_final_stats=1 "$work" >"$log" 2>&1; then
  grep -E '^(Done|stat::)' "$log"
else
  tail -n 60 "$log"
  echo "run_config_fuzzer: FAILED; the input is in build-fuzz/artifacts/ (full log: $log)" >&2
  exit 1
fi
