#!/usr/bin/env bash
# The apply job of hatchet-manifest.yaml: submit what the target does not have yet, then follow the runs.
#
# Needs HATCHET_CLIENT_TOKEN (an unrestricted Hatchet API token) and HATCHET_MANIFEST_LEDGER (the shared ledger,
# postgresql://, its writing role). LOCK_WAIT (seconds, default 1800), WAIT_TIMEOUT (default 30m) and
# RESUBMIT_UNKNOWN (non-empty: --resubmit-unknown) tune it. Exits with hatchet-manifest's exit code, after saying
# what it means and what to do in an annotation and in the job summary.
set -euo pipefail

manifests="${HATCHET_MANIFESTS:-manifests/}"
summary="${GITHUB_STEP_SUMMARY:-/dev/null}"

if [ -z "${HATCHET_CLIENT_TOKEN:-}" ] || [ -z "${HATCHET_MANIFEST_LEDGER:-}" ]; then
  echo "::error title=hatchet-manifest apply::HATCHET_CLIENT_TOKEN and HATCHET_MANIFEST_LEDGER must both be set (secrets of the job's environment, see README.md)"
  exit 1
fi

args=(apply "$manifests" --engine remote --yes --lock-wait "${LOCK_WAIT:-1800}"
  --wait --wait-timeout "${WAIT_TIMEOUT:-30m}")
if [ -n "${RESUBMIT_UNKNOWN:-}" ]; then
  args+=(--resubmit-unknown)
fi

rc=0
hatchet-manifest "${args[@]}" || rc=$?

# Says `message` as an annotation of `level` (notice, warning, error) and in the job summary.
report() {
  local level="$1" message="$2"
  echo "::${level} title=hatchet-manifest apply (exit ${rc})::${message}"
  printf '### hatchet-manifest apply: exit %s\n\n%s\n' "$rc" "$message" >>"$summary"
}

rerun="Re-run this job to resume: apply is idempotent (a run recorded as submitted is never sent again; failed and unsent ones are sent)."
case "$rc" in
  0) report notice "Every run is submitted and has completed." ;;
  1) report error "Nothing was submitted: an error in the manifests, the settings or the target (see the log). Fix it, then re-run the job." ;;
  3) report error "Partially submitted: some runs failed or have an unknown fate (listed in the log). ${rerun} Runs still of unknown fate after reconciliation are sent again only when you run the workflow by hand with resubmit_unknown." ;;
  5) report error "Every run is submitted, but some failed, were cancelled or are not found in the engine (listed in the log). Once the cause is fixed: hatchet-manifest retry ${manifests} --yes --wait" ;;
  6) report error "Every run is submitted; some were still unfinished after ${WAIT_TIMEOUT:-30m}. Nothing needs sending: follow them with hatchet-manifest status ${manifests} --watch, or re-run this job to wait again." ;;
  130 | 143) report error "The apply was interrupted or cancelled; what was submitted is recorded. ${rerun}" ;;
  *) report error "Unexpected exit code (4: an internal error; re-run with --traceback to see it)." ;;
esac
exit "$rc"
