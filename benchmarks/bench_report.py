"""How fast report.html loads in headless Chromium, for the default matrix.

    python benchmarks/bench_report.py [--results DIR] [--repeat N]

Runs the default matrix (fixtures/ x the six default chunkings vs the reference; or reads
``--results``), writes report.html, and opens it ``--repeat`` times in a fresh Chromium page,
timing navigation start to the load event (the page's scripts have run: the summary and the
distributions are drawn). The competitor is a page holding nothing but plotly.js's full bundle,
what the previous plotly report inlined before any data: the floor of that design. Targets
(issue #16): under 1000 ms and at most 1.5 MB.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from streambench.report.files import load_results
from streambench.report.html import report_html
from streambench.runner.executors import LocalExecutor
from streambench.runner.matrix import DEFAULT_CHUNKINGS, Matrix, run_matrix

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CHROMIUM = "/usr/bin/chromium"
TARGET_MS = 1000.0
TARGET_BYTES = 1_500_000


def load_ms(path: Path, repeat: int) -> list[float]:
    """Navigation start to the end of the load event, per fresh page."""
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        for _ in range(repeat):
            page = browser.new_page()
            page.goto(path.resolve().as_uri())
            page.wait_for_load_state("load")
            times.append(
                page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
            )
            page.close()
        browser.close()
    return times


def plotly_page(folder: Path) -> Path | None:
    """The competitor: an empty page with plotly.js inlined (None without plotly)."""
    try:
        from plotly.offline import get_plotlyjs
    except ImportError:
        return None
    page = folder / "plotly-only.html"
    page.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><script>{get_plotlyjs()}</script>"
        "</head><body></body></html>",
        encoding="utf-8",
    )
    return page


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, help="an --out folder (default: run the matrix)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    if args.results:
        frame = load_results(args.results)
    else:
        matrix = Matrix(cases=[str(FIXTURES)], chunkings=list(DEFAULT_CHUNKINGS))
        frame = run_matrix(matrix, LocalExecutor(args.jobs))
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(report_html(frame), encoding="utf-8")
        size = page.stat().st_size
        ours = statistics.median(load_ms(page, args.repeat))
        print(f"{len(frame)} runs; report.html {size / 1e6:.2f} MB (target <= 1.5 MB)")
        print(
            f"report.html load: {ours:7.1f} ms median of {args.repeat} "
            f"({'under' if ours < TARGET_MS else 'OVER'} the {TARGET_MS:.0f} ms target)"
        )
        competitor = plotly_page(Path(tmp))
        if competitor is not None:
            theirs = statistics.median(load_ms(competitor, args.repeat))
            mb = competitor.stat().st_size / 1e6
            print(f"plotly.js alone ({mb:.2f} MB): {theirs:7.1f} ms median")
            print(f"ratio: report.html loads in x{ours / theirs:.2f} the time of plotly.js alone")
        if size > TARGET_BYTES:
            raise SystemExit(f"report.html is {size} bytes, over {TARGET_BYTES}")


if __name__ == "__main__":
    main()
