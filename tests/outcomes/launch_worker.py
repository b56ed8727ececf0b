"""An official hatchet-sdk worker for the outcome tests, run as a real process:

    python tests/outcomes/launch_worker.py NAME SLOTS

`Launch` fails (without retries) while the file named by its input's `fail_while` exists, so that a test can
"fix the cause" by removing it and replay; it sleeps `seconds` first, stopping early when cancelled.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from hatchet_sdk import Context, Hatchet, NonRetryableException
from pydantic import BaseModel

NAME, SLOTS = sys.argv[1], int(sys.argv[2])
hatchet = Hatchet()


class LaunchInput(BaseModel):
    n: int = 0
    seconds: float = 0.0
    fail_while: str = ""
    note: str = ""  # quoted in the error (as a real task's error may quote its input)


@hatchet.task(name="Launch", input_validator=LaunchInput)
def launch(input: LaunchInput, ctx: Context) -> dict[str, Any]:
    deadline = time.monotonic() + input.seconds
    while time.monotonic() < deadline:
        if ctx.exit_flag:
            return {"cancelled": True}
        time.sleep(0.05)
    if input.fail_while and Path(input.fail_while).exists():
        raise NonRetryableException(f"input {input.n} is broken" + (f": {input.note}" if input.note else ""))
    return {"n": input.n, "worker": NAME}


if __name__ == "__main__":
    hatchet.worker(NAME, slots=SLOTS, workflows=[launch]).start()
