"""Regenerate docs/img/report-*.png: the default report (``streambench run`` with no arguments)
in headless Chromium, its top (summary, distributions) and one run's player half-way.

    python scripts/report_screenshots.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from streambench.report.files import write_reports
from streambench.runner.executors import LocalExecutor
from streambench.runner.matrix import DEFAULT_CHUNKINGS, Matrix, run_matrix

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO / "docs" / "img"
# The run the player shot shows: a job-code answer (status, changes, then text) in 1-delta chunks.
PLAYER_RUN = {"case": "job-basic-replace", "chunking": "deltas:1"}


def main() -> None:
    matrix = Matrix(cases=[str(REPO / "fixtures")], chunkings=list(DEFAULT_CHUNKINGS))
    frame = run_matrix(matrix, LocalExecutor(2))
    index = int(
        frame.index[
            (frame["case"] == PLAYER_RUN["case"]) & (frame["chunking"] == PLAYER_RUN["chunking"])
        ][0]
    )
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="report-shots-") as tmp:
        write_reports(frame, tmp)
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"]
            )
            page = browser.new_page(viewport={"width": 1200, "height": 820})
            page.goto((Path(tmp) / "report.html").as_uri())
            page.wait_for_load_state("load")
            page.screenshot(path=str(IMAGES / "report-summary.png"))
            card = page.locator(f"#run-{index}")
            card.locator("summary").click()
            card.locator("input.t").evaluate(
                "e => { e.value = e.max * 0.88; e.dispatchEvent(new Event('input')); }"
            )
            card.screenshot(path=str(IMAGES / "report-player.png"))
            browser.close()
    print(f"wrote {IMAGES / 'report-summary.png'} and {IMAGES / 'report-player.png'}")


if __name__ == "__main__":
    main()
