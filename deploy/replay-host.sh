#!/usr/bin/env bash
# One host of a fleet replay: fetch its traces, replay the pipeline (every variant) with the host
# label, export the store as Parquet, put the files into the fleet's dataset. Run as task INDEX of
# a Kubernetes Indexed Job (JOB_COMPLETION_INDEX) or a Slurm job array (SLURM_ARRAY_TASK_ID).
#
#   HOSTS_FILE    one host name per line; task INDEX takes line INDEX + 1
#   TRACES_URI    where each host's traces are: TRACES_URI/<host>/{cswitch.csv,disk.csv,machine.json,...}
#   DATASET_URI   the fleet's dataset (an `export` folder): s3://…, gs://… or a shared folder
#   PIPELINE      the pipeline file (its trace and profile paths relative to it: cswitch.csv, …)
#   RUN_DATE      optional label run_date=… (default: today, UTC)
#   WATTRACE      optional command (default: wattrace)
#
# Exit status: that of `wattrace compare` (1 when a variant breaks an expectation) once the
# results are uploaded, so a broken expectation is stored and still fails the task.
set -euo pipefail

index="${1:-${JOB_COMPLETION_INDEX:-${SLURM_ARRAY_TASK_ID:-}}}"
: "${index:?give the task index as the first argument, JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID}"
: "${HOSTS_FILE:?}" "${TRACES_URI:?}" "${DATASET_URI:?}" "${PIPELINE:?}"
wattrace_cmd=(${WATTRACE:-wattrace})

host=$(sed -n "$((index + 1))p" "$HOSTS_FILE" | tr -d '[:space:]')
[ -n "$host" ] || { echo "replay-host: no host on line $((index + 1)) of $HOSTS_FILE" >&2; exit 2; }

# Copies a folder from or to s3://, gs:// or a path.
copy() {
  case "$1$2" in
    *s3://*) aws s3 cp --recursive --only-show-errors --exclude '.export-*' "$1" "$2" ;;
    *gs://*) gsutil -m -q cp -r "$1/*" "$2" ;;
    *) mkdir -p "$2" && cp -R "$1/." "$2/" ;;
  esac
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
copy "$TRACES_URI/$host" "$work/host"
cp "$PIPELINE" "$work/host/pipeline.json"

status=0
"${wattrace_cmd[@]}" compare "$work/host/pipeline.json" --db "$work/$host.sqlite" \
  --label "host=$host" --label "run_date=${RUN_DATE:-$(date -u +%F)}" --format md > "$work/compare.md" || status=$?
# 0 and 1 (an expectation broken) stored runs; anything else stored nothing.
if [ "$status" -gt 1 ]; then exit "$status"; fi
"${wattrace_cmd[@]}" export --db "$work/$host.sqlite" --out "$work/dataset"
copy "$work/dataset" "$DATASET_URI"
echo "replay-host: $host done (compare exit $status)"
exit "$status"
