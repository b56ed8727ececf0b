"""The parallel apply (pass 1 in worker processes) against the serial one: same plan, same runs in the engine,
same ledger rows, the same problems, and crash safety. The parallel path is forced on small manifests with
`--workers 2 --parallel-threshold 0` (or HATCHET_MANIFEST_PARALLEL_THRESHOLD=0 in a subprocess)."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from hatchet_client.engine import RunStore

import hatchet_manifest as hm
from hatchet_manifest.ledger import open_ledger
from hatchet_manifest.manifest.render import SHARD_BLOCK
from tests.apply.conftest import cli_args, engine_runs
from tests.apply.test_crash_safety import _apply, _assert_exactly_once, _finish
from tests.conftest import ROOT, RunCli

PARALLEL = ("--workers", "2", "--parallel-threshold", "0")
SERIAL = ("--workers", "1")

SECRET_MANIFEST = """\
apiVersion: hatchet-manifest/v1
kind: TriggerManifest
metadata: {name: with-secret}
runs:
  - workflow_name: UsesSecret
    for_each: "{{ range(1500) }}"
    when: "{{ i % 7 != 3 }}"
    as: i
    input:
      n: "{{ i }}"
      password: "{{ secret('PARALLEL_TEST_PASSWORD') }}"
    options:
      priority: 2
      additional_metadata:
        auth: "{{ secret('PARALLEL_TEST_PASSWORD') }}-{{ i }}"
  - template: |
      {% for j in range(1200) %}
      - workflow_name: FromTemplate
        key: tpl-{{ j }}
        input: {j: {{ j }}, nested: {b: 1, a: [1, 2]}}
      {% endfor %}
"""


def _manifest(name: str, body: str) -> str:
    return f"apiVersion: hatchet-manifest/v1\nkind: TriggerManifest\nmetadata: {{name: {name}}}\nruns:\n{body}"


@pytest.fixture
def two_projects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """Two identical project directories (one applied serially, one in parallel), each with its own state."""
    monkeypatch.setenv("PARALLEL_TEST_PASSWORD", "hunter2")
    monkeypatch.setenv("HATCHET_MANIFEST_ALLOW_SECRETS", "PARALLEL_TEST_PASSWORD")  # the operator allows it
    out = []
    for name in ("serial", "parallel"):
        root = tmp_path / name
        shutil.copytree(ROOT / "manifests", root / "manifests")
        shutil.copytree(ROOT / "schemas", root / "schemas")
        (root / "manifests" / "with-secret.yaml").write_text(SECRET_MANIFEST)
        out.append(root)
    return out[0], out[1]


def _apply_in(run_cli: RunCli, root: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    result = run_cli("apply", "manifests", "--yes", "-o", "json", *args, cwd=root)
    assert "Traceback" not in result.stderr, result.stderr
    data = json.loads(result.stdout) if result.stdout.strip().startswith("{") else {}
    data.pop("seconds", None)
    return result.exit_code, data, result.stderr


def _plan_line(stderr: str) -> str:
    return next(line for line in stderr.splitlines() if line.startswith("Plan:"))


def _engine(root: Path) -> list[tuple[str, str, str]]:
    """The runs the engine holds, without the trace context it adds to each (random, like the real engine's)."""
    runs = engine_runs(root / ".hatchet-manifest")
    return sorted(
        (
            str(r["workflow_name"]),
            json.dumps(r["input"], sort_keys=True),
            json.dumps({k: v for k, v in r["metadata"].items() if k != "traceparent"}, sort_keys=True),  # type: ignore[attr-defined]
        )
        for r in runs
    )


def _ledger(root: Path) -> list[tuple[Any, ...]]:
    with open_ledger(None, root / ".hatchet-manifest") as ledger:
        rows = [(e.key, e.digest, e.manifest, e.file, e.state) for t in ledger.targets() for e in ledger.entries(t)]
    return sorted(rows)


@pytest.mark.slow
def test_parallel_apply_matches_serial(two_projects: tuple[Path, Path], run_cli: RunCli) -> None:
    serial, parallel = two_projects
    for step in (["--set", "count=2500"], ["--set", "count=4000"], ["--set", "count=4000", "--set", "region=us"]):
        s_code, s_data, s_err = _apply_in(run_cli, serial, *step, *SERIAL)
        p_code, p_data, p_err = _apply_in(run_cli, parallel, *step, *PARALLEL)
        assert s_code == p_code == 0, (s_err, p_err)
        assert p_data == s_data
        assert _plan_line(p_err) == _plan_line(s_err)
    assert s_data["plan"]["unchanged"] > 0 and s_data["plan"]["create"] > 0  # the last step: both kinds
    assert s_data["plan"]["removed"] == 7  # the us backfill replaced the eu one (left alone)
    runs = _engine(parallel)
    assert runs == _engine(serial)
    assert len(runs) == 4000 + 1 + 7 + 7 + 4 + 1286 + 1200
    assert any('"password": "hunter2"' in r[1] and '"auth": "hunter2-' in r[2] for r in runs)  # real secrets sent
    rows = _ledger(parallel)
    assert rows == _ledger(serial)
    assert "hunter2" not in json.dumps(rows)  # digests are of the masked values


@pytest.mark.slow
def test_parallel_resubmit_changed_matches_serial(two_projects: tuple[Path, Path], run_cli: RunCli) -> None:
    serial, parallel = two_projects
    for root, mode in ((serial, SERIAL), (parallel, PARALLEL)):
        assert _apply_in(run_cli, root, "--set", "count=3000", *mode)[0] == 0
        path = root / "manifests" / "bulk-parent.yaml"
        path.write_text(path.read_text().replace('n: "{{ i }}"', 'n: "{{ i if i % 2 else -i }}"'))
    results = []
    for root, mode in ((serial, SERIAL), (parallel, PARALLEL)):
        code, data, err = _apply_in(run_cli, root, "--set", "count=3000", *mode)
        assert code == 0, err
        assert data["skipped_changed"] == 1499  # every even i but 0
        code, data2, err = _apply_in(run_cli, root, "--set", "count=3000", "--resubmit-changed", *mode)
        assert code == 0, err
        assert data2["submitted"] == 1499
        results.append((data, data2))
    assert results[0] == results[1]
    assert _engine(parallel) == _engine(serial)
    assert _ledger(parallel) == _ledger(serial)


def _problems(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if not line.startswith(("target:", "submitted", "checked "))]


def _errors_case(project: Path, run_cli: RunCli, files: dict[str, str]) -> tuple[str, str]:
    """Apply the same broken manifests serially and in parallel: both exit 1, send nothing; their stderr."""
    (project / "manifests").mkdir(exist_ok=True)
    for name, text in files.items():
        (project / "manifests" / name).write_text(text)
    errs = []
    for mode in (SERIAL, PARALLEL):
        result = run_cli("apply", "manifests", "--yes", *mode, cwd=project)
        assert result.exit_code == 1, result.stderr
        assert "Traceback" not in result.stderr
        errs.append(result.stderr)
        assert (
            not (project / ".hatchet-manifest" / "engine.db").exists()
            or engine_runs(project / ".hatchet-manifest") == []
        )
    return errs[0], errs[1]


def test_errors_in_several_shards_are_all_reported(tmp_path: Path, run_cli: RunCli) -> None:
    body = (
        "  - workflow_name: Broken\n"
        '    for_each: "{{ range(5000) }}"\n'
        "    as: i\n"
        '    key: "k-{{ i }}"\n'
        '    input: {n: "{{ 1 // ((i % 1100) - 7) }}"}\n'  # fails at 7, 1107, 2207, 3307, 4407: blocks 0..4
        "  - workflow_name: BadPriority\n"
        '    for_each: "{{ range(3) }}"\n'
        '    key: "p-{{ item }}"\n'
        "    input: {}\n"
        '    options: {priority: "{{ 5 if item == 1 else 1 }}"}\n'
    )
    serial, parallel = _errors_case(tmp_path, run_cli, {"broken.yaml": _manifest("broken", body)})
    assert _problems(parallel) == _problems(serial)
    problems = _problems(parallel)
    assert problems[-1] == "error: 6 problems found"
    for i in (7, 1107, 2207, 3307, 4407):
        assert (
            f"manifests/broken.yaml:9: runs[0] (i={i}): input.n: ZeroDivisionError: integer division or modulo by zero"
            in problems
        )
    assert any("runs[1] (item=1): options.priority" in p for p in problems)


def test_duplicate_keys_across_shards_are_caught(tmp_path: Path, run_cli: RunCli) -> None:
    body = (
        "  - workflow_name: W\n"
        '    for_each: "{{ range(3000) }}"\n'
        "    as: i\n"
        "    key: \"{{ 'same' if i in (5, 1500, 2900) else 'k-' ~ i }}\"\n"
        '    input: {n: "{{ i }}"}\n'
    )
    other = "  - workflow_name: W\n    key: k-2048\n    input: {n: -1}\n"  # the same key as a run of block 2
    serial, parallel = _errors_case(
        tmp_path, run_cli, {"a.yaml": _manifest("a", body), "b.yaml": _manifest("b", other)}
    )
    assert _problems(parallel) == _problems(serial)
    assert "manifests/a.yaml:8: runs[0] (i=1500): key: duplicate key 'same'" in parallel
    assert "manifests/a.yaml:8: runs[0] (i=2900): key: duplicate key 'same'" in parallel
    assert "manifests/b.yaml:6: runs[0]: key: duplicate key 'k-2048'" in parallel
    assert _problems(parallel)[-1] == "error: 3 problems found"


def test_many_duplicates_are_capped_like_serial(tmp_path: Path, run_cli: RunCli) -> None:
    body = (
        "  - workflow_name: W\n"
        '    for_each: "{{ range(5000) }}"\n'
        "    as: i\n"
        '    key: "dup-{{ i % 1500 }}"\n'
        '    input: {n: "{{ i }}"}\n'
    )
    serial, parallel = _errors_case(tmp_path, run_cli, {"a.yaml": _manifest("a", body)})
    assert _problems(parallel) == _problems(serial)
    assert "... and 3400 more problems" in parallel


@pytest.mark.slow
def test_shards_make_up_the_serial_stream(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(SECRET_MANIFEST.replace("secret('PARALLEL_TEST_PASSWORD')", "'x'"))
    shutil.copy(ROOT / "manifests" / "matrix-train.yaml", tmp_path / "m.yaml")
    shutil.copy(ROOT / "manifests" / "bulk-parent.yaml", tmp_path / "b.yaml")
    values = hm.Values(set=["count=3333"])

    def renderer() -> hm.Renderer:
        return hm.Renderer(hm.load([tmp_path]), values, schema_dir=None)

    serial = list(renderer().runs())
    for n in (1, 2, 3):
        merged = []
        for k in range(n):
            merged.extend(renderer().stream(shard=(k, n)))
            assert all((o // SHARD_BLOCK) % n == k for _, o, _ in renderer().stream(shard=(k, n)))
        assert [run for _, _, run in sorted(merged, key=lambda t: t[1])] == serial


def test_rendering_leaves_the_loaded_manifests_unchanged() -> None:
    """Workers get the parent's loaded manifests after it prepared them: preparing must not change them (a constant
    matrix's include/exclude were popped from the document itself)."""
    manifests = hm.load([ROOT / "manifests" / "matrix-train.yaml"])
    first = list(hm.Renderer(manifests, schema_dir=None).runs())
    assert list(hm.Renderer(manifests, schema_dir=None).runs()) == first
    assert len(first) == 4


def test_a_run_the_encoder_refuses_is_reported_like_serial(tmp_path: Path, engine: dict[str, str]) -> None:
    """The workers encode every run; a run over the max send size is an error only if it is to be sent."""
    (tmp_path / "big.yaml").write_text(
        _manifest(
            "big",
            "  - workflow_name: Big\n"
            '    for_each: "{{ range(3000) }}"\n'
            '    key: "big-{{ item }}"\n'
            "    input: {s: \"{{ 'x' * (60000 if item == 2500 else 10) }}\"}\n",
        )
    )
    env = {**engine, "HATCHET_CLIENT_GRPC_MAX_SEND_MESSAGE_LENGTH": "50000"}
    errors = []
    for mode in (SERIAL, PARALLEL):
        proc = subprocess.run(
            cli_args("apply", "big.yaml", "--yes", "--engine", "remote", "--state-dir", str(tmp_path / mode[1]), *mode),
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 1, proc.stderr
        errors.append(proc.stderr.splitlines()[-1])
    assert errors[0] == errors[1]
    assert errors[1] == (
        "error: run 2500 ('big-2500'): run: encoded request is 60186 bytes, over the max send size of 50000 bytes"
    )
    store = RunStore(engine["ENGINE_DB"])
    try:
        assert store.count() == 0
    finally:
        store.close()


# -- crash safety with the parallel path on -------------------------------------------------------------------


@pytest.fixture
def parallel_env(engine: dict[str, str]) -> dict[str, str]:
    return {**engine, "HATCHET_MANIFEST_PARALLEL_THRESHOLD": "0"}


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "manifests" / "bulk-parent.yaml", tmp_path / "bulk-parent.yaml")
    return tmp_path / "bulk-parent.yaml"


def _no_stray_workers(since: float) -> None:
    deadline = time.monotonic() + 10
    while True:
        stray = []
        for p in psutil.process_iter(["cmdline", "create_time"]):
            cmdline = p.info["cmdline"] or []
            if "hatchet_manifest.apply.shard_worker" in cmdline and (p.info["create_time"] or 0) >= since:
                stray.append(p.pid)
        if not stray:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"render workers outlived their apply: {stray}")
        time.sleep(0.1)


def test_parallel_crash_at_a_chosen_point_then_reapply(
    tmp_path: Path, parallel_env: dict[str, str], manifest: Path
) -> None:
    started = time.time() - 1
    proc = _apply(tmp_path, parallel_env, "--workers", "2", crash="after-pending:7")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 137, err.decode()
    _finish(tmp_path, parallel_env)
    _assert_exactly_once(parallel_env)
    _no_stray_workers(started)


@pytest.mark.slow  # a soak: random kill points / 500 runs through a worker
def test_parallel_kill_9_at_random_moments_then_reapply(
    tmp_path: Path, parallel_env: dict[str, str], manifest: Path
) -> None:
    started = time.time() - 1
    rng = random.Random(int(os.environ.get("CRASH_SEED", "11")))
    for _ in range(4):
        proc = _apply(tmp_path, parallel_env, "--workers", "2", count=3000)
        time.sleep(rng.uniform(0.3, 2.0))  # in pass 1 (the workers) or in pass 2
        proc.kill()
        proc.communicate(timeout=60)
    for _ in range(3):
        time.sleep(0.6)
        again = _apply(tmp_path, parallel_env, "--workers", "2", "--resubmit-unknown", count=3000)
        _, err = again.communicate(timeout=120)
        if again.returncode == 0:
            break
        assert again.returncode == 3, err.decode()
    assert again.returncode == 0, err.decode()
    _assert_exactly_once(parallel_env, 3000)
    _no_stray_workers(started)
