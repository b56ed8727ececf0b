"""The SDK docs' two snippets (API-triggered workflows) run as written, with only the import changed.

The text below is copied verbatim from the docs page "Python SDK > API-Triggered Workflows" (run_workflow.py and
run_workflows.py), except `from hatchet_sdk import ...` -> `from hatchet_client import ...` (done by `run`
below) and the single space the page leaves on its blank lines.

The bulk snippet annotates a module-level variable with `WorkflowRun`, a name it never imports. Python 3.11
evaluates module-level annotations, so that text raises NameError whatever the SDK (Python 3.14 no longer
evaluates them eagerly). We run it both ways users can make it work: under postponed annotations (PEP 563,
`from __future__ import annotations` applied as a compiler flag, the text untouched), and with `WorkflowRun`
added to the import.
"""

from __future__ import annotations
import __future__

from collections.abc import Callable
from typing import Any

import pytest
from hatchet_client import WorkflowRunRef

from tests.engine.traceparent import user_metadata

RUN_WORKFLOW = """\
from hatchet_sdk import Hatchet, ClientConfig

hatchet = Hatchet()

workflowRun = hatchet.client.admin.run_workflow(
    "ManualTriggerWorkflow",
    {"test": "test"},
    options={"additional_metadata": {"hello": "moon"}},
)
"""

RUN_WORKFLOWS = """\
from hatchet_sdk import Hatchet, ClientConfig

hatchet = Hatchet()

workflowRuns: WorkflowRun = []

for i in range(20):
    workflowRuns.append(
        {
            "workflow_name": "BulkParent",
            "input": {"n": i},
            "options": {
                "additional_metadata": {
                    "bulk-trigger": i,
                    "hello-{i}": "earth-{i}",
                },
            },
        }
    )

workflowRunRefs = hatchet.admin.run_workflows(
    workflowRuns,
)
"""

OUR_IMPORT = "from hatchet_client import Hatchet, ClientConfig"


def run(text: str, *, postponed_annotations: bool = False) -> dict[str, Any]:
    source = text.replace("from hatchet_sdk import Hatchet, ClientConfig", OUR_IMPORT)
    assert source.count("hatchet_sdk") == 0
    flags = __future__.annotations.compiler_flag if postponed_annotations else 0
    namespace: dict[str, Any] = {"__name__": "docs_snippet"}
    try:
        exec(compile(source, "docs_snippet.py", "exec", flags=flags, dont_inherit=True), namespace)
    finally:
        if "hatchet" in namespace:
            namespace["hatchet"].close()
    return namespace


@pytest.fixture
def env_engine(engine: Any, clean_env: pytest.MonkeyPatch) -> Any:
    clean_env.setenv("HATCHET_CLIENT_TOKEN", engine.token())
    clean_env.setenv("HATCHET_CLIENT_TLS_STRATEGY", "none")
    return engine


def test_run_workflow_snippet(env_engine: Any, stored: Callable[..., list[Any]]) -> None:
    ns = run(RUN_WORKFLOW)
    ref = ns["workflowRun"]
    assert isinstance(ref, WorkflowRunRef)
    [stored_run] = stored()
    assert stored_run.run_id == ref.workflow_run_id
    assert (stored_run.workflow_name, stored_run.input) == ("ManualTriggerWorkflow", {"test": "test"})
    assert user_metadata(stored_run.additional_metadata) == {"hello": "moon"}


@pytest.mark.parametrize("variant", ["postponed annotations", "WorkflowRun imported"])
def test_run_workflows_snippet(env_engine: Any, stored: Callable[..., list[Any]], variant: str) -> None:
    if variant == "postponed annotations":
        ns = run(RUN_WORKFLOWS, postponed_annotations=True)
    else:
        ns = run(RUN_WORKFLOWS.replace("ClientConfig", "ClientConfig, WorkflowRun", 1))
    refs = ns["workflowRunRefs"]
    assert len(refs) == 20
    by_id = {r.run_id: r for r in stored()}
    for i, ref in enumerate(refs):
        got = by_id[ref.workflow_run_id]
        assert (got.workflow_name, got.input) == ("BulkParent", {"n": i})
        assert user_metadata(got.additional_metadata) == {"bulk-trigger": str(i), "hello-{i}": "earth-{i}"}


def test_the_bulk_snippet_needs_one_of_those_on_python_3_11(env_engine: Any) -> None:
    with pytest.raises(NameError, match="WorkflowRun"):
        run(RUN_WORKFLOWS)
