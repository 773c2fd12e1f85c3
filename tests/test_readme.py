"""README's code blocks as a user runs them: the demo command runs as written; every other flairseg command parses."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from flairseg.cli import build_parser

README = Path(__file__).parents[1] / "README.md"


def _commands() -> list[str]:
    """Every command line of README's bash blocks, split at ``&&``, comments and blank lines left out."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    return [part.strip() for line in lines if line and not line.startswith("#") for part in line.split("&&")]


def _flairseg_arguments(command: str) -> list[str] | None:
    """The arguments after ``flairseg`` (or ``-m flairseg``), with shell variables given example values; None: not
    flairseg.
    """
    words = shlex.split(
        re.sub(r"\$\{(\w+)\}", lambda m: {"SLURM_ARRAY_TASK_ID": "3", "SLURM_CPUS_PER_TASK": "4"}[m[1]], command)
    )
    for index, word in enumerate(words):
        if word.endswith("/flairseg") or word == "flairseg":
            return words[index + 1 :]
    return None


def test_readme_has_the_commands_a_user_starts_with() -> None:
    commands = _commands()
    assert any("flairseg demo" in c for c in commands) and any(
        c.startswith(".venv/bin/python -m pytest") for c in commands
    )


def test_ci_runs_the_test_command_readme_gives() -> None:
    """.ci/run's last line is README's "Run the tests" command, word for word (lint and tests)."""
    command = re.search(r"Run the tests.*?```bash\n(.*?)\n```", README.read_text(encoding="utf-8"), flags=re.S)[1]
    assert "ruff check" in command and (README.parent / ".ci" / "run").read_text().rstrip().splitlines()[-1] == command


@pytest.mark.parametrize("command", [c for c in _commands() if _flairseg_arguments(c) is not None])
def test_every_flairseg_command_in_readme_parses(command: str) -> None:
    args = build_parser().parse_args(_flairseg_arguments(command))  # a stale option or command exits with status 2
    assert callable(args.run)


def test_readme_demo_runs_as_written(tmp_path: Path) -> None:
    """The install block's last step, in a fresh folder: the demo on the bundled case, as a new user sees it."""
    demo = next(c for c in _commands() if "flairseg demo" in c)
    words = shlex.split(demo)
    words[0] = str(Path(sys.executable).with_name("flairseg"))  # this test environment's .venv/bin/flairseg
    done = subprocess.run(words, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Dice 0.9" in done.stdout and (tmp_path / "flairseg-demo" / "report.html").is_file()
