#!/usr/bin/env bash
# The plan jobs of hatchet-manifest.yaml: what this change and `apply` would do, for people to review.
#
#   plan.sh [--base GITREF]
#
# With --base (pull requests): `diff --base GITREF`, what the change adds, changes and removes compared with the
# manifests at GITREF. Git only: no engine, no ledger, no secret (so it works in pull requests from forks).
# Then, when HATCHET_CLIENT_TOKEN and HATCHET_MANIFEST_LEDGER are set (read-only credentials are enough),
# `diff --detailed-exitcode`: what `apply` would send to the target, saved as hatchet-plan/plan.json.
# Without them (a fork, or secrets not configured), a note says so instead of failing.
#
# Writes hatchet-plan/{base.md,plan.md,plan.json,comment.md}, appends the plan to $GITHUB_STEP_SUMMARY and sets
# `changes=true|false` in $GITHUB_OUTPUT. Exit 0 (changes or not), or the exit code of the diff that failed.
set -euo pipefail

manifests="${HATCHET_MANIFESTS:-manifests/}"
out="${PLAN_DIR:-hatchet-plan}"
summary="${GITHUB_STEP_SUMMARY:-/dev/null}"
outputs="${GITHUB_OUTPUT:-/dev/null}"
marker="<!-- hatchet-manifest-plan -->"
# The job's page, linked from the comment: GitHub's, unless RUN_URL says (e.g. GitLab's $CI_JOB_URL).
run_url="${RUN_URL:-${GITHUB_SERVER_URL:-https://github.com}/${GITHUB_REPOSITORY:-}/actions/runs/${GITHUB_RUN_ID:-}}"

base=""
if [ "${1:-}" = "--base" ]; then
  base="${2:?--base needs a git revision}"
fi

if { [ -n "${HATCHET_CLIENT_TOKEN:-}" ] && [ -z "${HATCHET_MANIFEST_LEDGER:-}" ]; } ||
  { [ -z "${HATCHET_CLIENT_TOKEN:-}" ] && [ -n "${HATCHET_MANIFEST_LEDGER:-}" ]; }; then
  echo "::error title=hatchet-manifest::set both HATCHET_CLIENT_TOKEN and HATCHET_MANIFEST_LEDGER, or neither (one of the two is empty)"
  exit 1
fi

commit="${GITHUB_SHA:-}"
if [ -z "$commit" ]; then
  commit="$(git rev-parse HEAD)"
fi

mkdir -p "$out"
rm -f "$out/base.md" "$out/plan.md" "$out/plan.json" "$out/comment.md"
{
  echo "$marker"
  echo "## hatchet-manifest plan"
  echo
  echo "Commit \`$commit\` ([run]($run_url))"
  echo
} >"$out/comment.md"

# Appends a section to the job summary and to the pull-request comment.
section() {
  tee -a "$summary" >>"$out/comment.md"
}

failed() {
  local what="$1" rc="$2"
  echo "::error title=hatchet-manifest ${what}::${what} failed with exit code ${rc}: the messages are in this step's log"
  printf '**%s failed** (exit code %s): the messages are in [the job log](%s).\n' "$what" "$rc" "$run_url" | section
  exit "$rc"
}

if [ -n "$base" ]; then
  rc=0
  hatchet-manifest diff "$manifests" --base "$base" -o markdown >"$out/base.md" || rc=$?
  [ "$rc" -eq 0 ] || failed "diff --base $base" "$rc"
  cat "$out/base.md"
  { echo "### This change, compared with \`$base\`"; echo; cat "$out/base.md"; echo; } | section
fi

if [ -z "${HATCHET_CLIENT_TOKEN:-}" ] && [ -z "${HATCHET_MANIFEST_LEDGER:-}" ]; then
  note="No Hatchet credentials in this job (a pull request from a fork, or the HATCHET_PLAN_TOKEN and HATCHET_PLAN_LEDGER secrets are not set): the plan against the target is skipped; the apply job on main computes it again before it sends anything."
  echo "::notice title=hatchet-manifest::${note}"
  printf '> [!NOTE]\n> %s\n' "$note" | section
  echo "changes=unknown" >>"$outputs"
  exit 0
fi

# --engine remote: the target is HATCHET_CLIENT_*, never an embedded engine on the runner.
rc=0
hatchet-manifest diff "$manifests" --engine remote --detailed-exitcode --out "$out/plan.json" -o markdown \
  >"$out/plan.md" || rc=$?
case "$rc" in
  0) changes=false ;;
  2) changes=true ;; # --detailed-exitcode: changes present; not an error
  *) failed "diff" "$rc" ;;
esac
cat "$out/plan.md"
{ echo "### What apply would do"; echo; cat "$out/plan.md"; } | section
echo "changes=$changes" >>"$outputs"
