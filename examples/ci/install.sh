#!/usr/bin/env bash
# Installs the pinned hatchet-manifest of requirements.txt (beside this script) into the job's Python: the same
# version in every job, the pip cache of actions/setup-python keyed on that file.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
requirements="$here/requirements.txt"

if grep -Eq '^[^#]*OWNER/REPO' "$requirements"; then
  echo "::error file=${requirements#"$PWD/"}::replace OWNER/REPO (and the ref) with the repository and release of hatchet-manifest to install"
  exit 1
fi
python -m pip install --no-input --progress-bar off -r "$requirements"
hatchet-manifest --version
