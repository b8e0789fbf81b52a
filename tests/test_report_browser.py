"""report.html opened in headless Chromium: every chart image decodes (naturalWidth > 0) and
every table renders with cells. Needs Debian's `chromium` package (`.ci/run` installs it);
without it this test fails and says so, never a silent pass."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess

import pytest

from experiments.report.writer import write_report
from tests.synthetic_run import add_other_steps, write_run

CHROMIUM_COMMANDS = ("chromium", "chromium-browser")
CHECK = """<script>
window.addEventListener("load", () => {
  const images = [...document.images].map(i => ({alt: i.alt, width: i.naturalWidth, height: i.naturalHeight}));
  const tables = [...document.querySelectorAll("table")].map(t => ({
    rows: t.rows.length, cells: t.querySelectorAll("td").length, height: t.getBoundingClientRect().height}));
  const out = document.createElement("pre");
  out.id = "lab-check";
  out.textContent = JSON.stringify({images, tables});
  document.body.appendChild(out);
});
</script>"""


def chromium() -> str:
    for name in CHROMIUM_COMMANDS:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        "headless Chromium is needed to check report.html: install Debian's `chromium` package "
        "(apt-get install -y chromium; .ci/run does it)",
        pytrace=False,
    )


def rendered(page) -> dict:
    """Open `page` in headless Chromium and return what the CHECK script found after load."""
    done = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--virtual-time-budget=15000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    found = re.search(r'<pre id="lab-check">(.*?)</pre>', done.stdout, re.S)
    assert found, f"no check output from Chromium (exit {done.returncode}): {done.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


def test_every_chart_loads_and_every_table_renders(tmp_path):
    run = write_run(tmp_path / "reports")
    add_other_steps(run)  # every section and chart of the report
    write_report(run.path)
    report = (run.path / "report.html").read_text(encoding="utf-8")
    page = run.path / "report-check.html"  # the report itself has no script; the check is added to a copy
    page.write_text(report.replace("</body>", CHECK + "</body>"), encoding="utf-8")
    found = rendered(page)
    assert len(found["images"]) == len(re.findall(r"<img ", report)) >= 9
    assert [i for i in found["images"] if i["width"] <= 0 or i["height"] <= 0] == []
    assert len(found["tables"]) == report.count("<table") >= 13
    assert [t for t in found["tables"] if t["cells"] == 0 or t["height"] <= 0] == []


def test_a_broken_chart_is_caught(tmp_path):
    """The check itself: an image that does not decode has naturalWidth 0."""
    page = tmp_path / "broken.html"
    page.write_text(
        "<!doctype html><html><body><img src='data:image/png;base64,AAAA' alt='broken'>"
        "<table><tr><td>x</td></tr></table>" + CHECK + "</body></html>",
        encoding="utf-8",
    )
    found = rendered(page)
    assert found["images"] == [{"alt": "broken", "width": 0, "height": 0}]
    assert found["tables"][0]["cells"] == 1
