"""An official hatchet-sdk worker for the example manifests (manifests/): run their workflows locally.

    hatchet-manifest engine serve &
    export HATCHET_CLIENT_TOKEN=$(hatchet-manifest engine token) HATCHET_CLIENT_TLS_STRATEGY=none
    python examples/worker/worker.py &
    hatchet-manifest apply manifests/ --yes --engine remote
    hatchet-manifest engine runs -o table

Each task only reports what it was given: replace the bodies with real work.
"""

from __future__ import annotations

from typing import Any

from hatchet_sdk import Context, Hatchet
from pydantic import BaseModel, ConfigDict

hatchet = Hatchet()


class AnyInput(BaseModel):
    model_config = ConfigDict(extra="allow")


@hatchet.task(name="BulkParent", input_validator=AnyInput)
def bulk_parent(input: AnyInput, ctx: Context) -> dict[str, Any]:
    return {"received": input.model_dump(), "metadata": ctx.additional_metadata}


@hatchet.task(name="ManualTriggerWorkflow", input_validator=AnyInput)
def manual_trigger(input: AnyInput, ctx: Context) -> dict[str, Any]:
    return {"received": input.model_dump()}


@hatchet.task(name="DailyReport", input_validator=AnyInput, retries=2, backoff_factor=2.0, backoff_max_seconds=30)
def daily_report(input: AnyInput, ctx: Context) -> dict[str, Any]:
    return {"report_for": input.model_dump()}


@hatchet.task(name="TrainModel", input_validator=AnyInput)
def train_model(input: AnyInput, ctx: Context) -> dict[str, Any]:
    return {"trained": input.model_dump()}


def main() -> None:
    worker = hatchet.worker(
        "example-worker", slots=20, workflows=[bulk_parent, manual_trigger, daily_report, train_model]
    )
    worker.start()


if __name__ == "__main__":
    main()
