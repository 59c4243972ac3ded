"""The offline book check (ltmpq.tools.bookcheck) on tiny hand-written sites, in real headless Chromium.

Without Chromium or playwright these tests skip locally and fail in CI (``CI`` set), so CI cannot
pass without the check having run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from ltmpq.tools import bookcheck
from ltmpq.tools.bookcheck import Report, check_site

ROOT = Path(__file__).resolve().parent.parent
#: Where the book keeps its local MathJax copy (``BOOKCHECK_MATHJAX`` points elsewhere, e.g. a
#: folder with an unpacked ``mathjax`` npm package's ``es5/``).
MATHJAX_DIR = Path(os.environ.get("BOOKCHECK_MATHJAX", ROOT / "book" / "_mathjax" / "mathjax"))
EXTERNAL = "http://203.0.113.1/x.js"  # TEST-NET-3: never routable, and blocked before it is sent anyway
MATH_SPAN = r'<span class="math notranslate nohighlight">\(x^2\)</span>'
# Pages Sphinx writes that are not content: if the check visited them it would report their
# missing image.
NOT_CONTENT = ["genindex.html", "search.html", "_static/x.html", "_sources/y.html"]


def require_browser() -> None:
    """Skip without Chromium/playwright, except in CI where that must fail."""
    reason = None
    exe = bookcheck.find_chromium()
    if exe is None or not os.access(exe, os.X_OK):
        reason = f"Chromium not found ({exe!r}); install it or set CHROMIUM"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reason = "playwright is not installed (pip install -e '.[test]')"
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the book check: {reason}")
    pytest.skip(reason)


def html(body: str, head: str = "") -> str:
    head = f"<meta charset='utf-8'><title>t</title>{head}"
    return f"<!doctype html><html><head>{head}</head><body>{body}</body></html>"


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site")
    Image.new("RGB", (16, 12), (200, 40, 40)).save(root / "img.png")  # a real PNG the browser decodes
    write(root, "good.html", html('<p>ok</p><img src="img.png" alt="plot">'))
    write(root, "chapter/good2.html", html('<img src="../img.png" alt="plot">'))
    write(root, "broken.html", html('<img src="missing.png" alt="gone">'))
    write(root, "external.html", html("<p>cdn</p>", head=f'<script src="{EXTERNAL}"></script>'))
    write(root, "math.html", html(f"<p>inline {MATH_SPAN}</p>"))
    for rel in NOT_CONTENT:
        write(root, rel, html('<img src="not-there.png">'))
    return root


@pytest.fixture(scope="module")
def report(site: Path) -> Report:
    require_browser()
    # Short math wait: the page without MathJax would otherwise take the full 10 s.
    return check_site(site, math_timeout_s=2.0)


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:8000/a.html", True),
        ("http://localhost:1/x.png", True),
        ("data:image/png;base64,AAAA", True),
        ("about:blank", True),
        ("https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js", False),
        (EXTERNAL, False),
        ("ws://example.org/socket", False),
    ],
)
def test_is_local(url: str, local: bool) -> None:
    assert bookcheck.is_local(url) is local


def test_chromium_env_overrides_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHROMIUM", "/opt/my/chrome")
    assert bookcheck.find_chromium() == "/opt/my/chrome"


def test_visits_content_pages_only(report: Report) -> None:
    assert [r.page for r in report.pages] == [
        "broken.html",
        "chapter/good2.html",
        "external.html",
        "good.html",
        "math.html",
    ]


def test_good_pages_ok(report: Report) -> None:
    for name in ("good.html", "chapter/good2.html"):
        page = report.page(name)
        assert page.ok, page.problems
        assert page.images_loaded == 1 and page.broken_images == []
        assert any(u.endswith("/img.png") for u in page.requests)
        assert all(bookcheck.is_local(u) for u in page.requests)


def test_broken_image(report: Report) -> None:
    page = report.page("broken.html")
    assert page.broken_images == ["missing.png"]
    kinds = {(p.kind, p.detail) for p in page.problems}
    assert ("broken image", "missing.png") in kinds
    assert ("HTTP 404", "/missing.png") in kinds


def test_external_request_reported_and_blocked(report: Report) -> None:
    page = report.page("external.html")
    assert page.external_requests == [EXTERNAL]
    assert [(p.kind, p.detail) for p in page.problems] == [("external request", EXTERNAL)]
    # Aborted by the checker's route before leaving the browser, not a network timeout.
    assert [(u, e.startswith("net::ERR_BLOCKED_BY_CLIENT")) for u, e in page.failed_requests] == [
        (EXTERNAL, True)
    ]


def test_math_without_mathjax_fails(report: Report) -> None:
    page = report.page("math.html")
    assert (page.math_markup, page.math_rendered, page.math_unrendered) == (1, 0, 1)
    assert [p.kind for p in page.problems] == ["math not rendered"]


def test_summary_lists_each_problem(report: Report) -> None:
    assert not report.ok
    text = report.summary()
    assert text.startswith("Book check FAILED")
    assert "broken.html: broken image: missing.png" in text
    assert f"external.html: external request: {EXTERNAL}" in text
    assert "math.html: math not rendered" in text
    assert "good.html" not in text


def test_cli_ok_with_screenshots(site: Path, tmp_path: Path) -> None:
    require_browser()
    shots = tmp_path / "shots"
    args = [site, "--pages", "good.html", "chapter/good2.html", "math.html", "--no-require-math"]
    proc = subprocess.run(
        [sys.executable, "-m", "ltmpq.tools.bookcheck", *map(str, args), "--screenshots", str(shots)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("Book check OK: 3 pages checked, 2 images loaded")
    for name in ("good.png", "chapter__good2.png", "math.png"):
        assert (shots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_fails_with_summary(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_browser()
    assert bookcheck.main([str(site), "--pages", "broken.html", "nope.html"]) == 1
    out = capsys.readouterr().out
    assert "broken.html: broken image: missing.png" in out
    assert "nope.html: missing page" in out


def test_local_mathjax_renders(tmp_path: Path) -> None:
    if not (MATHJAX_DIR / "tex-chtml.js").is_file():
        pytest.skip(f"no local MathJax at {MATHJAX_DIR} (set BOOKCHECK_MATHJAX to an es5/ folder)")
    require_browser()
    try:
        (tmp_path / "mathjax").symlink_to(MATHJAX_DIR, target_is_directory=True)
    except OSError:  # no symlinks (some filesystems): copy instead
        shutil.copytree(MATHJAX_DIR, tmp_path / "mathjax")
    head = '<script defer src="mathjax/tex-chtml.js"></script>'
    display = r'<div class="math notranslate nohighlight">\[\int_0^1 f\]</div>'
    write(tmp_path, "ok.html", html(f"<p>{MATH_SPAN}</p>{display}", head=head))
    # A missing \frac argument: MathJax renders an error box instead of the formula.
    write(
        tmp_path,
        "err.html",
        html(r'<span class="math notranslate nohighlight">\(\frac{1}\)</span>', head=head),
    )
    result = check_site(tmp_path, pages=["ok.html", "err.html"])
    ok = result.page("ok.html")
    assert ok.ok, ok.problems
    assert (ok.math_markup, ok.math_rendered, ok.math_unrendered) == (2, 2, 0)
    assert [p.kind for p in result.page("err.html").problems] == ["math error"]


def test_wide_tables_must_scroll_not_be_cut_off(tmp_path: Path) -> None:
    """A table wider than its column passes only inside a container that scrolls sideways."""
    require_browser()
    cells = "".join(f"<td>column {i} with a long header</td>" for i in range(30))
    wide = f"<table><tr>{cells}</tr></table>"
    body = (
        '<main style="width: 400px">'
        "<table><tr><td>fits</td></tr></table>"
        f'<div style="overflow-x: auto">{wide}</div>'
        f'<div style="overflow-x: hidden">{wide}</div>'
        "</main>"
    )
    write(tmp_path, "tables.html", html(body))
    page = check_site(tmp_path, require_math=False).page("tables.html")
    assert (page.tables_fit, page.tables_scrolling) == (1, 1)
    assert [p.kind for p in page.problems] == ["table cut off"]
    assert "column 0 with a long header" in page.problems[0].detail
