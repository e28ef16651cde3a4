"""The README's walkthrough, run as written against `careledger dev`: it cannot drift.

Every ```console block of the walkthrough is a shell session: `$ ` lines are commands (a
trailing backslash continues them), the lines after a command are what it prints (stdout and
stderr). The commands run in order in one bash, from a folder laid out like the repository
(`.careledger/dev` is the dev network's directory, `tests/` the repository's), and each
command's output must match what the README shows, but for what differs from run to run:
record ids and other 64-hex values (salted commitments), times, and the width of tables.
A line holding only `…` in the README stands for any number of lines.

`python -m tests.backend.e2e.test_readme` runs the walkthrough and prints the real outputs,
for updating the README.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.backend.gateways import dev_command, wait_gateway_ready

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]
ELLIPSIS = "…"
_MARK = "@@walkthrough-step-{}@@"


@dataclass
class Step:
    command: str
    expected: list[str]


def walkthrough(readme: str) -> list[Step]:
    """The commands of the README's walkthrough section, with the output each shows."""
    section = readme.split("## Walkthrough", 1)[1].split("\n## ", 1)[0]
    steps: list[Step] = []
    for block in re.findall(r"```console\n(.*?)```", section, re.S):
        lines = block.splitlines()
        i = 0
        while i < len(lines):
            line = lines[i]
            if not line.startswith("$ "):
                steps[-1].expected.append(line)
                i += 1
                continue
            command = line[2:]
            while command.endswith("\\"):
                i += 1
                command = command[:-1].rstrip() + " " + lines[i].strip()
            steps.append(Step(command, []))
            i += 1
    return steps


def run_walkthrough(steps: list[Step], workdir: Path) -> list[str]:
    """Run the commands in one bash in `workdir`; the output of each (stdout and stderr)."""
    script = "".join(f"printf '%s\\n' '{_MARK.format(n)}'\n{s.command} 2>&1\n" for n, s in enumerate(steps))
    env = {**os.environ, "COLUMNS": "140", "NO_COLOR": "1", "TERM": "dumb"}
    env.pop("CARELEDGER_KEYSTORE", None)
    run = subprocess.run(
        ["bash"], input=script, capture_output=True, text=True, cwd=workdir, env=env, timeout=600
    )
    parts = re.split(r"@@walkthrough-step-\d+@@\n", run.stdout)
    assert len(parts) == len(steps) + 1, f"the walkthrough stopped early:\n{run.stdout}\n{run.stderr}"
    return [p.rstrip("\n") for p in parts[1:]]


def _normal(line: str) -> str:
    line = re.sub(r"0x[0-9a-fA-F]{64}", "0x<hash>", line)
    line = re.sub(r"0x[0-9a-fA-F]{8}…", "0x<hash>…", line)
    line = re.sub(r"\d{4}-\d{2}-\d{2}( \d{2}:\d{2}(:\d{2})?)?", "<time>", line)
    line = re.sub(r"http://127\.0\.0\.1:\d+", "http://127.0.0.1:<port>", line)
    line = re.sub(r"\d+(\.\d+)? ?(events/s|s\b)", "<n> \\2", line)
    return re.sub(r"[\s━─═]+", " ", line).strip()


def matches(expected: list[str], actual: list[str]) -> bool:
    """Does `actual` match `expected`, line by line after _normal, `…` matching any lines?"""
    pattern = "".join(
        r"(?:.*\n)*?" if line.strip() == ELLIPSIS else re.escape(_normal(line)) + r"\n"
        for line in expected
        if line.strip() == ELLIPSIS or _normal(line)
    )
    text = "".join(_normal(line) + "\n" for line in actual if _normal(line))
    return re.fullmatch(pattern, text) is not None


@contextmanager
def dev_network(workdir: Path) -> Iterator[dict[str, object]]:
    """`careledger dev` with its directory at `workdir/.careledger/dev`; `workdir/tests` is the repo's."""
    (workdir / "tests").symlink_to(ROOT / "tests")
    dev = subprocess.Popen(
        dev_command(workdir / ".careledger" / "dev"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert dev.stdout is not None
        line = dev.stdout.readline()
        if not line:
            raise AssertionError(f"careledger dev failed:\n{dev.stderr.read() if dev.stderr else ''}")
        summary = json.loads(line)
        for url in summary["gateways"].values():
            wait_gateway_ready(url)
        yield summary
    finally:
        dev.send_signal(signal.SIGINT)
        try:
            dev.wait(timeout=30)
        except subprocess.TimeoutExpired:
            dev.kill()


def test_readme_walkthrough_prints_what_it_says(tmp_path: Path) -> None:
    steps = walkthrough((ROOT / "README.md").read_text())
    assert len(steps) >= 20, "the walkthrough lost its commands"
    with dev_network(tmp_path):
        outputs = run_walkthrough(steps, tmp_path)
    for step, output in zip(steps, outputs, strict=True):
        assert matches(step.expected, output.splitlines()), (
            f"$ {step.command}\nREADME shows:\n" + "\n".join(step.expected) + f"\n\nbut it printed:\n{output}"
        )


def test_the_matcher_ignores_only_what_varies() -> None:
    shown = ["┃ a ┃ 0x" + "ab" * 32 + " ┃", "…", "done 2026-11-23 06:20"]
    assert matches(shown, ["┃   a   ┃ 0x" + "cd" * 32 + " ┃", "x", "y", "done 2027-01-01 00:00"])
    assert matches(shown, ["┃ a ┃ 0x" + "cd" * 32 + " ┃", "done 2027-01-01 00:00"])
    assert not matches(shown, ["┃ b ┃ 0x" + "cd" * 32 + " ┃", "done 2027-01-01 00:00"])
    assert not matches(["error: 403"], ["error: 404"])


if __name__ == "__main__":  # print the real outputs of the walkthrough, for the README
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        readme = (ROOT / "README.md").read_text() if len(sys.argv) < 2 else Path(sys.argv[1]).read_text()
        found = walkthrough(readme)
        with dev_network(work):
            for found_step, out in zip(found, run_walkthrough(found, work), strict=True):
                print(f"$ {found_step.command}")
                if out:
                    print(out)
        shutil.rmtree(work, ignore_errors=True)
