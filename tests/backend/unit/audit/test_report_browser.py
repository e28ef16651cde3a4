"""The HTML report renders in a real browser: Debian's headless Chromium.

`scripts/install-chromium` installs it. Under CI (`CI=true`) a missing Chromium fails the
test; elsewhere it is skipped with that hint.
"""

from __future__ import annotations

import os
import struct
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from careledger.audit.report import render_html
from tests.backend.unit.audit.reports import sample_report, table_rows

CHROMIUM = Path("/usr/bin/chromium")
WIDTH, HEIGHT = 1280, 2000
FLAGS = [
    "--headless",
    "--no-sandbox",  # we run as root in CI containers, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def _chromium() -> Path:
    """Chromium's path; a failure under CI (where the test command installs it), else a skip."""
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    message = f"{CHROMIUM} is missing: run scripts/install-chromium"
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "audit.html"
    path.write_text(render_html(sample_report(), generated_at=datetime(2026, 2, 1, tzinfo=UTC)))
    return path


def _run(chromium: Path, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp / "profile"
    command = [str(chromium), *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=os.environ | {"HOME": str(tmp)},  # keep Chromium's caches out of the real home
    )


def test_report_screenshot_in_headless_chromium(page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"

    _run(_chromium(), tmp_path, f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}", page.as_uri())

    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == (WIDTH, HEIGHT)  # IHDR width, height
    assert len(png) > 10_000, "a blank page compresses to a few KB"


def test_report_dom_in_headless_chromium_has_the_findings_table(page: Path, tmp_path: Path) -> None:
    dom = _run(_chromium(), tmp_path, "--dump-dom", page.as_uri()).stdout

    assert 'id="findings"' in dom
    assert len(table_rows(dom, "findings", "finding")) == len(sample_report().findings)
    assert 'id="timeline"' in dom
