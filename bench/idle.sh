#!/bin/bash
# Idle cost of N pipelines (default 100): bench/run.sh --idle N [options];
# see bench/idle_mode.sh and bench/README.md.
n="${1:-100}"
[ $# -gt 0 ] && shift
exec "$(dirname "${BASH_SOURCE[0]}")/run.sh" --idle "$n" --no-perf "$@"
