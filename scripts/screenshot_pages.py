"""Screenshot the HTML pages the demo writes, in a real headless browser, to look at them.

Writes the demo's report pages (``collapse-diag demo``: the bundled text and image VAEs), a
comparison of them, then takes one full-page PNG of each ``*.html`` with headless Chromium
at a 1280 px wide window (issue 22: tables must fit it, labels must not overlap). Look at
the PNGs; nothing is asserted. Not run in CI (no browser there).

Usage::

    apt-get install -y chromium        # once
    python scripts/screenshot_pages.py --out /tmp/pages          # demo + comparison
    python scripts/screenshot_pages.py --pages some/folder       # any existing pages

Prints each screenshot's path, and the page's height and the widest content in pixels
(a width above the window's means something scrolls sideways), then each table or figure
that scrolls sideways in its box at that width (``--width 420`` for a phone). The pages of
every kind of document (a VQ-VAE, a sequence model, a trajectory, ...) can be written by
hand and passed with ``--pages``.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path


def write_demo_pages(out: Path, seed: int) -> None:
    """The demo's report pages and a comparison page under ``out``."""
    from collapse_diag.demo import run_demo
    from collapse_diag.render.comparison import write_comparison
    from collapse_diag.runs.comparison import compare

    reports = run_demo(out, seed=seed, formats=("json", "html"), echo=lambda _: None)
    folders = [str(out / name) for name in reports]
    write_comparison(compare(folders), out / "comparison", formats=("html",))


def screenshot(browser: str, page: Path, png: Path, width: int, height: int) -> None:
    """One PNG of ``page`` at ``width`` x ``height`` (the page beyond ``height`` is cut)."""
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={png}", f"--window-size={width},{height}",
                    page.resolve().as_uri()], check=True, capture_output=True, timeout=180)


#: Appended to a copy of the page: lists every box (a table's scroll box, a figure) whose
#: content is wider than the box, i.e. what the reader has to scroll sideways.
_PROBE = """<script>window.addEventListener('load', () => {
  const out = [];
  document.querySelectorAll('.scroll, figure').forEach((box) => {
    if (box.scrollWidth > box.clientWidth + 1) out.push([box.scrollWidth, box.clientWidth,
      (box.textContent || '').trim().replace(/\\s+/g, ' ').slice(0, 50)]); });
  const pre = document.createElement('pre'); pre.id = 'SCROLLING';
  pre.textContent = JSON.stringify(out); document.body.appendChild(pre); });</script>"""


def scrolling(browser: str, page: Path, width: int) -> list[list]:
    """``[content width, box width, first words]`` of each box that scrolls sideways."""
    probe = page.with_name(f"_probe_{page.name}")
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"),
                     encoding="utf-8")
    try:
        dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                              "--hide-scrollbars", f"--window-size={width},900",
                              "--virtual-time-budget=3000", "--dump-dom",
                              probe.resolve().as_uri()],
                             check=True, capture_output=True, text=True, timeout=180).stdout
    finally:
        probe.unlink()
    found = re.search(r'<pre id="SCROLLING">(.*?)</pre>', dom, re.S)
    return json.loads(html.unescape(found.group(1))) if found else []


def extent(png: Path) -> tuple[int, int]:
    """(height, width) of the non-white content of ``png``, in pixels."""
    import numpy as np
    from PIL import Image

    grey = np.asarray(Image.open(png).convert("L")) < 250
    rows, cols = np.flatnonzero(grey.any(1)), np.flatnonzero(grey.any(0))
    return (int(rows.max()) + 1 if rows.size else 0), (int(cols.max()) + 1 if cols.size else 0)


def main() -> int:
    """Write (or find) the pages, screenshot each, print where and how big."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("collapse-diag-pages"),
                        help="folder for the demo's pages and the screenshots")
    parser.add_argument("--pages", type=Path, default=None,
                        help="screenshot the *.html under this folder instead of the demo's")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=16000, help="tallest page captured")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--browser", default=shutil.which("chromium") or "chromium")
    args = parser.parse_args()
    if not shutil.which(args.browser):
        print(f"no browser {args.browser!r}: apt-get install -y chromium", file=sys.stderr)
        return 2
    root = args.pages
    if root is None:
        write_demo_pages(args.out, args.seed)
        root = args.out
    shots = args.out / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    for page in sorted(root.rglob("*.html")):
        png = shots / (page.relative_to(root).as_posix().replace("/", "__") + ".png")
        screenshot(args.browser, page, png, args.width, args.height)
        height, width = extent(png)
        flag = "  WIDER THAN THE WINDOW" if width >= args.width else ""
        print(f"{png}  height {height} px, content to x = {width} px{flag}")
        for content, box, words in scrolling(args.browser, page, args.width):
            print(f"    scrolls sideways: {content} px in a {box} px box: {words}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
