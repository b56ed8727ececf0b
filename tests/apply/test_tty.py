"""On a terminal, apply asks before submitting (and shows progress); diff colours its plan unless NO_COLOR."""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import time
from pathlib import Path

from tests.apply.conftest import cli_args, engine_runs
from tests.conftest import ROOT


def run_in_pty(args: list[str], cwd: Path, answer: str | None, env: dict[str, str]) -> tuple[int, str]:
    """Run a command with a terminal as stdin/stdout/stderr; type `answer` when it asks. Returns (code, output)."""
    main, child = pty.openpty()
    proc = subprocess.Popen(args, cwd=cwd, stdin=child, stdout=child, stderr=child, env=env, close_fds=True)
    os.close(child)
    output = b""
    answered = False
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(main, 4096)
                except OSError:  # the terminal closed: the process is done
                    break
                if not chunk:
                    break
                output += chunk
                if answer is not None and not answered and b"[y/N]" in output:
                    os.write(main, answer.encode() + b"\n")
                    answered = True
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=30)
    finally:
        os.close(main)
    return code, output.decode(errors="replace")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HATCHET_", "CI", "NO_COLOR"))}
    env["TERM"] = "xterm"
    return env


def test_apply_asks_on_a_terminal(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    args = cli_args("apply", "manifests/bulk-parent.yaml", "--engine", "embedded")
    code, out = run_in_pty(args, tmp_path, "n", _env())
    assert code == 1 and "Submit 20 run(s) to the embedded engine" in out and "Aborted" in out
    assert engine_runs(tmp_path / ".hatchet-manifest") == []
    code, out = run_in_pty(args, tmp_path, "y", _env())
    assert code == 0, out
    assert "sent 20/20 (100%): 20 submitted" in out and "Apply: 20 to send: 20 submitted" in out
    assert len(engine_runs(tmp_path / ".hatchet-manifest")) == 20


def test_diff_is_coloured_on_a_terminal_unless_no_color(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    args = cli_args("diff", "manifests/manual-trigger.yaml", "--engine", "embedded")
    _, out = run_in_pty(args, tmp_path, None, _env())
    assert "\x1b[32m+ manual-trigger" in out
    _, out = run_in_pty(args, tmp_path, None, {**_env(), "NO_COLOR": "1"})
    assert "+ manual-trigger" in out and "\x1b[32m" not in out


def test_no_color_term_dumb_and_force_color(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    args = cli_args("diff", "manifests/manual-trigger.yaml", "--engine", "embedded")
    no_color = [*args[:3], "--no-color", *args[3:]]  # a global option, before the command
    _, out = run_in_pty(no_color, tmp_path, None, _env())
    assert "+ manual-trigger" in out and "\x1b[" not in out
    _, out = run_in_pty(args, tmp_path, None, {**_env(), "TERM": "dumb"})
    assert "+ manual-trigger" in out and "\x1b[" not in out
    # no terminal at all, but a CI log that shows colour
    env = {**_env(), "FORCE_COLOR": "1"}
    proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert "\x1b[32m+ manual-trigger" in proc.stdout, proc.stderr
    proc = subprocess.run(args, cwd=tmp_path, env={**env, "NO_COLOR": "1"}, capture_output=True, text=True, timeout=60)
    assert "\x1b[" not in proc.stdout  # NO_COLOR wins


def test_apply_progress_on_a_dumb_terminal_is_lines(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    args = cli_args("apply", "manifests/bulk-parent.yaml", "--engine", "embedded", "--yes")
    code, out = run_in_pty(args, tmp_path, None, {**_env(), "TERM": "dumb"})
    assert code == 0, out
    assert "sent 20/20 (100%): 20 submitted" in out and "\x1b[K" not in out and "\r\x1b" not in out
