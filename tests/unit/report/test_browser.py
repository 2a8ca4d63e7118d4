"""The report opened in a real headless browser (Debian's `chromium`): the DOM it builds holds the title and
every figure, and its screenshot is not blank, shows the backends' colours and — read back by OCR
(`tesseract`) — the page title. Offline: the browser gets no resolver and no route out.

Skipped when chromium or tesseract is missing, unless FLYHPC_REQUIRE_BROWSER=1 (CI), which makes that a
failure. Debian packages: chromium, tesseract-ocr, tesseract-ocr-eng.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest

from flyhpc.report.build import build_report

WIDTH, HEIGHT = 1280, 1600
OKABE_BLUE = (0x00, 0x72, 0xB2)  # brian2cpp's colour


def _tool(*names: str) -> str:
    found = next((shutil.which(n) for n in names if shutil.which(n)), None)
    if found is None:
        reason = f"{' / '.join(names)} not installed (Debian: apt-get install chromium tesseract-ocr tesseract-ocr-eng)"
        if os.environ.get("FLYHPC_REQUIRE_BROWSER") == "1":
            pytest.fail(f"FLYHPC_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    return found


def _chromium(browser: str, profile, *args: str) -> subprocess.CompletedProcess:
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           f"--user-data-dir={profile}", "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
           f"--window-size={WIDTH},{HEIGHT}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, env={**os.environ, "HOME": str(profile)})


@pytest.fixture(scope="module")
def page(bundle, tmp_path_factory):
    browser, ocr = _tool("chromium", "chromium-browser"), _tool("tesseract")
    out = tmp_path_factory.mktemp("browser")
    result = build_report(bundle, "full", out / "report")
    return {"browser": browser, "ocr": ocr, "uri": result.html.resolve().as_uri(), "dir": out}


def test_the_browser_builds_the_whole_page(page):
    proc = _chromium(page["browser"], page["dir"] / "profile-dom", "--dump-dom", page["uri"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    assert "<title>flyhpc report: full</title>" in dom and "<h1>flyhpc report: full</h1>" in dom
    assert dom.count("<svg ") == 5 and "Complete: all 24 planned tasks done." in dom


def test_the_screenshot_is_not_blank_and_shows_the_title(page):
    from PIL import Image

    shot = page["dir"] / "shot.png"
    proc = _chromium(page["browser"], page["dir"] / "profile-shot", f"--screenshot={shot}", page["uri"])
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape == (HEIGHT, WIDTH, 3)
    ink = (pixels < 200).any(axis=2)
    assert 0.02 < ink.mean() < 0.9  # neither blank nor a solid block
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 100  # text, figures, banners: many colours
    blue = (np.abs(pixels.astype(int) - OKABE_BLUE).sum(axis=2) < 30).sum()
    assert blue > 200  # the speed figure's brian2cpp lines are drawn
    top = page["dir"] / "top.png"
    Image.open(shot).crop((0, 0, WIDTH, 160)).save(top)
    text = subprocess.run([page["ocr"], str(top), "-"], capture_output=True, text=True, timeout=120).stdout
    assert "flyhpc report: full" in text, text
