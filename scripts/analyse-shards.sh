#!/usr/bin/env bash
# Analyses a run into its analysis cache in N processes at once on this machine, each over its own
# range of checkpoints (embedlapse analyse --shard I/N), with xargs -P. The shards write what one
# process would; render, compare and the rest then read the cache.
#
#   scripts/analyse-shards.sh RUN N [analyse options...]     e.g. scripts/analyse-shards.sh runs/vit 4 --cache /scratch/c
#
# Each shard uses all cores unless --threads says otherwise (give --threads $(( $(nproc) / N ))).
# EMBEDLAPSE_BIN names the binary (default: embedlapse on PATH). Exits non-zero if any shard fails.
set -euo pipefail
if [[ $# -lt 2 || ! $2 =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 RUN N [embedlapse analyse options...]" >&2
    exit 2
fi
run=$1 shards=$2
shift 2
binary=${EMBEDLAPSE_BIN:-embedlapse}
seq 1 "$shards" | xargs -P "$shards" -I '{}' "$binary" analyse "$run" --shard "{}/$shards" "$@"
