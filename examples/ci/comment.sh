#!/usr/bin/env bash
# The comment job of hatchet-manifest.yaml: one plan comment per pull request, updated in place on every push.
#
#   comment.sh BODY_FILE
#
# Needs GH_TOKEN (the job's GITHUB_TOKEN, pull-requests: write), GITHUB_REPOSITORY and PR_NUMBER. The comment is
# found by the marker its body starts with, among those of github-actions[bot] (a human quoting the marker is
# left alone). Uses gh and jq, both on GitHub's runners.
set -euo pipefail

body_file="${1:?usage: comment.sh BODY_FILE}"
marker="<!-- hatchet-manifest-plan -->"
author="${COMMENT_AUTHOR:-github-actions[bot]}"
: "${GITHUB_REPOSITORY:?}" "${PR_NUMBER:?}"

if ! grep -qF -- "$marker" "$body_file"; then
  echo "::error::$body_file does not hold the plan comment's marker" >&2
  exit 1
fi

# Every page of the pull request's comments (gh prints one JSON array a page), then the first that is ours.
comments="$(gh api --paginate "repos/${GITHUB_REPOSITORY}/issues/${PR_NUMBER}/comments?per_page=100")"
id="$(jq -rs --arg marker "$marker" --arg author "$author" \
  'add // [] | map(select(.user.login == $author and (.body | startswith($marker)))) | first | .id // empty' \
  <<<"$comments")"

body="$(cat "$body_file")"
if [ "${#body}" -gt 65000 ]; then # GitHub refuses comments over 65,536 characters
  run_url="${GITHUB_SERVER_URL:-https://github.com}/${GITHUB_REPOSITORY}/actions/runs/${GITHUB_RUN_ID:-}"
  body_file="$(mktemp)"
  printf '%s\n## hatchet-manifest plan\n\nThe plan is too long for a comment: it is in the summary of [the plan job](%s).\n' \
    "$marker" "$run_url" >"$body_file"
fi
payload="$(jq -n --rawfile body "$body_file" '{body: $body}')"
if [ -n "$id" ]; then
  gh api --method PATCH "repos/${GITHUB_REPOSITORY}/issues/comments/${id}" --input - <<<"$payload" >/dev/null
  echo "updated the plan comment ${id}"
else
  gh api --method POST "repos/${GITHUB_REPOSITORY}/issues/${PR_NUMBER}/comments" --input - <<<"$payload" >/dev/null
  echo "posted the plan comment"
fi
