"""The generated stubs in hatchet_client._proto match sdk/protos, and the check notices a changed .proto."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gen_protos.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_protos_under_test", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_stubs_match_the_protos() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr


def test_the_check_fails_when_a_proto_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    protos = tmp_path / "protos"
    shutil.copytree(ROOT / "sdk" / "protos", protos)
    trigger = protos / "v1" / "trigger.proto"
    text = trigger.read_text()
    assert "map<string, DesiredWorkerLabels> desired_worker_labels = 10;" in text
    trigger.write_text(
        text.replace(
            "map<string, DesiredWorkerLabels> desired_worker_labels = 10;",
            "map<string, DesiredWorkerLabels> desired_worker_labels = 10;\n  optional string drifted = 11;",
        )
    )
    script = load_script()
    monkeypatch.setattr(script, "PROTO_DIR", protos)
    monkeypatch.setattr(sys, "argv", ["gen_protos.py", "--check"])
    assert script.main() == 1
    err = capsys.readouterr().err
    assert "generated stubs drifted from sdk/protos" in err
    assert "v1/trigger_pb2.py" in err
