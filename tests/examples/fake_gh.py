#!/usr/bin/env python3
"""A stand-in for `gh api` on the issue-comments endpoints, over a JSON file ($FAKE_GH_STATE): what comment.sh
calls, answered as GitHub answers (a list is paged two comments a page, one JSON array a page, as
`gh api --paginate` prints them). Every call is appended to the state's `calls`."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    state_file = Path(os.environ["FAKE_GH_STATE"])
    state = json.loads(state_file.read_text())
    assert os.environ.get("GH_TOKEN"), "gh needs GH_TOKEN"
    assert argv[0] == "api", argv
    args = argv[1:]
    method = "GET"
    if "--method" in args:
        method = args[args.index("--method") + 1]
    endpoint = next(a for a in args if a.startswith("repos/"))
    body = json.loads(sys.stdin.read()) if "--input" in args else None
    state["calls"].append({"method": method, "endpoint": endpoint, "paginate": "--paginate" in args, "body": body})
    comments = state["comments"]
    if method == "GET" and re.fullmatch(r"repos/[^/]+/[^/]+/issues/\d+/comments(\?.*)?", endpoint):
        pages = [comments[i : i + 2] for i in range(0, len(comments), 2)] or [[]]
        for page in pages if "--paginate" in args else pages[:1]:
            print(json.dumps(page))
    elif method == "POST" and re.fullmatch(r"repos/[^/]+/[^/]+/issues/\d+/comments", endpoint):
        assert body is not None
        comment = {"id": state["next_id"], "user": {"login": "github-actions[bot]"}, "body": body["body"]}
        state["next_id"] += 1
        comments.append(comment)
        print(json.dumps(comment))
    elif method == "PATCH" and (m := re.fullmatch(r"repos/[^/]+/[^/]+/issues/comments/(\d+)", endpoint)):
        assert body is not None
        (comment,) = [c for c in comments if c["id"] == int(m.group(1))]
        comment["body"] = body["body"]
        print(json.dumps(comment))
    else:
        print(f"fake gh: unexpected call {argv}", file=sys.stderr)
        return 1
    state_file.write_text(json.dumps(state))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
