#!/bin/bash
# eo_ingest memory check: a 10-million-event backlog drained by one worker with
# default settings; samples the worker's memory every 0.5 s while it drains
# (for at most --memory-seconds, default 120) and reports the peak private
# memory (RssAnon; target < 200 MB) and VmHWM.  Same setup as bench/run.sh:
#
#   bench/memory.sh [--backlog N] [--memory-seconds S] [other run.sh options]
exec "$(dirname "${BASH_SOURCE[0]}")/run.sh" --backlog 10000000 "$@"
