"""Check that the built book works offline, in a real browser (``make check-book`` and CI).

Serves ``book/_build/html`` (or any HTML folder) on 127.0.0.1, opens every page in headless Chromium
through Playwright and reports, per page: requests to anything but the local server, failed
requests and HTTP errors, images that did not load, math markup that MathJax did not render, and
console/page errors. It knows nothing about the chapters, so new pages are checked without edits.

Requests to other hosts are recorded and then aborted, so the check itself never sends traffic off
the machine (and a book that depends on a CDN fails instead of silently working online).

CLI::

    python -m ltmpq.tools.bookcheck HTML_DIR [--pages a.html b.html] [--screenshots DIR] [--no-require-math]

exits 1 and prints the problems when there are any, else prints a one-line summary and exits 0.
Set ``CHROMIUM`` to choose the browser binary (default: Debian's ``/usr/bin/chromium``).
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, ConsoleMessage, Page, Response, Route, WebSocketRoute

#: Sphinx's own pages that are not book content (and whose JS needs the search index, not images).
SKIPPED_PAGES = {"genindex.html", "search.html"}
SKIPPED_DIRS = {"_static", "_sources"}
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
#: Schemes that never reach the network.
IGNORED_SCHEMES = {"data", "blob", "about", "javascript"}
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    # Containers (CI) often have a 64 MB /dev/shm, which crashes Chromium; Debian's wrapper is meant
    # to add this flag itself but its size test is not reliable.
    "--disable-dev-shm-usage",
    # Backstop for traffic that request interception cannot see (preconnect hints, sockets): any
    # non-loopback connection goes to a dead proxy. Loopback is bypassed implicitly by Chromium.
    "--proxy-server=127.0.0.1:9",
]
#: Console/page errors that the stock Jupyter Book 1.x theme stack emits on every build and that do
#: not affect reading the book; they are kept in ``PageResult.ignored_errors`` but are not problems.
KNOWN_BENIGN_ERRORS = (
    # pydata-sphinx-theme on a first visit (empty localStorage, as with our fresh profile): it
    # resets the colour mode to "auto" itself (pydata/pydata-sphinx-theme#1635).
    re.compile(r"^Got invalid theme mode: \. Resetting to auto\.$"),
    # jupyter-book 1.x + sphinx-thebe write the thebe config <script> twice; the second `const`
    # fails, the first already set the values (and thebe is only used for online launch buttons).
    re.compile(r"Identifier '(THEBE_JS_URL|thebe_selector\w*)' has already been declared"),
)
NAV_TIMEOUT_S = 30.0
IMG_TIMEOUT_S = 10.0
MATH_TIMEOUT_S = 10.0

# Lazy images below the fold would never load in a fixed viewport, so they are forced to load;
# then every image gets until the timeout to settle (load or error).
_IMAGES_JS = """
async (timeoutMs) => {
  const imgs = [...document.images];
  for (const img of imgs) if (img.loading === 'lazy') img.loading = 'eager';
  const settle = (img) => img.complete ? Promise.resolve() : new Promise((r) => {
    img.addEventListener('load', r, {once: true});
    img.addEventListener('error', r, {once: true});
  });
  await Promise.race([Promise.all(imgs.map(settle)), new Promise((r) => setTimeout(r, timeoutMs))]);
  return imgs.map((img) => ({src: img.getAttribute('src') || '', url: img.currentSrc || img.src,
                             complete: img.complete, width: img.naturalWidth}));
}
"""

# Sphinx wraps every formula in an element with class "math" and MathJax 3 puts an <mjx-container>
# inside it; poll until each one has a container (MathJax typesets asynchronously after load).
_MATH_JS = """
async ([timeoutMs, wait]) => {
  const unrendered = () => [...document.querySelectorAll('.math')]
    .filter((e) => !e.querySelector('mjx-container')).length;
  const deadline = Date.now() + timeoutMs;
  if (wait) {
    while (unrendered() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const startup = window.MathJax && window.MathJax.startup && window.MathJax.startup.promise;
    if (startup) {
      await Promise.race([startup, new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now())))]);
    }
  }
  return {
    markup: document.querySelectorAll('.math').length,
    rendered: document.querySelectorAll('mjx-container').length,
    unrendered: unrendered(),
    errors: [...document.querySelectorAll('mjx-merror')]
      .map((e) => e.getAttribute('data-mjx-error') || e.textContent),
  };
}
"""

# A table wider than the space it has must sit in a container that scrolls sideways (the book's
# CSS makes output areas do so); otherwise its last columns are cut off or spill over the page.
_TABLES_JS = """
() => {
  const out = {fit: 0, scrolling: 0, clipped: []};
  for (const t of document.querySelectorAll('article table, main table')) {
    let el = t.parentElement, verdict = 'fit';
    while (el && el !== document.body) {
      const ox = getComputedStyle(el).overflowX;
      if (t.scrollWidth > el.clientWidth + 1) {
        verdict = (ox === 'auto' || ox === 'scroll') ? 'scrolling' : 'clipped';
        if (verdict === 'scrolling' || ox === 'hidden' || ox === 'clip') break;
      } else if (ox === 'auto' || ox === 'scroll') break;
      el = el.parentElement;
    }
    const text = t.innerText.slice(0, 60).replace(/\\s+/g, ' ');
    if (verdict === 'clipped') out.clipped.push(`${t.scrollWidth}px wide: ${text}`);
    else out[verdict] += 1;
  }
  return out;
}
"""

# Connection hints open sockets without a request event, so they are read from the DOM.
_HINTS_JS = """
() => [...document.querySelectorAll('link[rel~="preconnect" i], link[rel~="dns-prefetch" i]')]
  .map((l) => l.href)
"""


@dataclass(frozen=True)
class Problem:
    """One thing wrong on one page."""

    page: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.page}: {self.kind}: {self.detail}"


@dataclass
class PageResult:
    """What was observed on one page; ``problems`` is filled by :func:`check_site`."""

    page: str
    url: str
    requests: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    failed_requests: list[tuple[str, str]] = field(default_factory=list)
    bad_responses: list[tuple[str, int]] = field(default_factory=list)
    images_loaded: int = 0
    broken_images: list[str] = field(default_factory=list)
    math_markup: int = 0
    math_rendered: int = 0
    math_unrendered: int = 0
    tables_fit: int = 0
    tables_scrolling: int = 0
    math_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    ignored_errors: list[str] = field(default_factory=list)
    screenshot: Path | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class Report:
    """Per-page results of one :func:`check_site` run."""

    html_dir: Path
    pages: list[PageResult]

    @property
    def problems(self) -> list[Problem]:
        return [p for r in self.pages for p in r.problems]

    @property
    def ok(self) -> bool:
        return bool(self.pages) and not self.problems

    def page(self, name: str) -> PageResult:
        """The result for page ``name`` (path relative to the HTML folder)."""
        for r in self.pages:
            if r.page == name:
                return r
        raise KeyError(name)

    def summary(self) -> str:
        if not self.pages:
            return f"Book check FAILED: no pages found under {self.html_dir}"
        if self.ok:
            ignored = sum(len(r.ignored_errors) for r in self.pages)
            return (
                f"Book check OK: {len(self.pages)} pages checked, "
                f"{sum(r.images_loaded for r in self.pages)} images loaded, "
                f"{sum(r.math_rendered for r in self.pages)} math elements rendered, "
                f"{sum(r.tables_fit + r.tables_scrolling for r in self.pages)} tables shown whole "
                f"({sum(r.tables_scrolling for r in self.pages)} scroll sideways), "
                f"{sum(len(r.requests) for r in self.pages)} requests all local ({self.html_dir})"
                + (f"; {ignored} known theme errors ignored" if ignored else "")
            )
        problems = self.problems
        bad = sum(1 for r in self.pages if not r.ok)
        lines = [
            f"Book check FAILED: {len(problems)} problem(s) on {bad} of {len(self.pages)} page(s) "
            f"in {self.html_dir}"
        ]
        lines += [f"  {p}" for p in problems]
        return "\n".join(lines)


def find_chromium() -> str | None:
    """The browser binary: ``$CHROMIUM`` if set, else the first Chromium found on the system."""
    env = os.environ.get("CHROMIUM")
    if env:
        return env
    for cand in CHROMIUM_CANDIDATES:
        if os.access(cand, os.X_OK):
            return cand
    return shutil.which("chromium")


def list_pages(html_dir: Path) -> list[str]:
    """Every content page under ``html_dir`` as a POSIX path relative to it, sorted."""
    pages = []
    for path in sorted(html_dir.rglob("*.html")):
        rel = path.relative_to(html_dir)
        if rel.as_posix() in SKIPPED_PAGES or rel.parts[0] in SKIPPED_DIRS:
            continue
        pages.append(rel.as_posix())
    return pages


def is_local(url: str) -> bool:
    """True for URLs served by the local server or that never touch the network."""
    parts = urlsplit(url)
    if parts.scheme in IGNORED_SCHEMES:
        return True
    return (parts.hostname or "") in LOCAL_HOSTS


class _QuietHandler(SimpleHTTPRequestHandler):
    # Module scripts and fonts are rejected or warned about with a generic type, and the system's
    # mime.types (which Python reads) does not always know these extensions.
    extensions_map = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".js": "text/javascript",
        ".mjs": "text/javascript",
        ".json": "application/json",
        ".svg": "image/svg+xml",
        ".wasm": "application/wasm",
        ".woff": "font/woff",
        ".woff2": "font/woff2",
    }

    def log_message(self, format: str, *args: Any) -> None:
        pass  # failures are reported through the browser's view of the responses


@contextmanager
def serve(html_dir: Path) -> Iterator[str]:
    """Serve ``html_dir`` on a free port of 127.0.0.1; yields the base URL (ending in ``/``)."""
    handler = functools.partial(_QuietHandler, directory=str(html_dir))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="bookcheck-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def check_site(
    html_dir: Path,
    pages: list[str] | None = None,
    screenshot_dir: Path | None = None,
    require_math: bool = True,
    *,
    math_timeout_s: float = MATH_TIMEOUT_S,
) -> Report:
    """Open each page of the built book in headless Chromium and collect offline-usability problems.

    ``pages`` are paths relative to ``html_dir`` (default: every content page). With
    ``require_math=False`` math markup that MathJax did not render is not a problem.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("the book check needs playwright: pip install -e '.[test]'") from exc

    html_dir = Path(html_dir).resolve()
    if not html_dir.is_dir():
        raise FileNotFoundError(f"no such HTML folder: {html_dir}")
    names = list_pages(html_dir) if pages is None else [p.lstrip("/") for p in pages]
    exe = find_chromium()
    if exe is None or not os.access(exe, os.X_OK):
        raise FileNotFoundError(f"Chromium not found (got {exe!r}); install it or set CHROMIUM")
    if screenshot_dir is not None:
        screenshot_dir = Path(screenshot_dir)
        screenshot_dir.mkdir(parents=True, exist_ok=True)

    results: list[PageResult] = []
    with (
        serve(html_dir) as base,
        sync_playwright() as pw,
        tempfile.TemporaryDirectory(prefix="bookcheck-profile-") as profile,
    ):
        # A fresh profile per run: no cache or state from earlier runs can hide a missing file.
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=exe,
            headless=True,
            args=CHROMIUM_ARGS,
            service_workers="block",  # their fetches would bypass request interception
        )
        try:
            for name in names:
                result = PageResult(page=name, url=base + quote(name))
                if not (html_dir / name).is_file():
                    result.problems.append(Problem(name, "missing page", str(html_dir / name)))
                else:
                    _check_page(context, result, base, screenshot_dir, require_math, math_timeout_s)
                results.append(result)
        finally:
            context.close()
    return Report(html_dir=html_dir, pages=results)


def _check_page(
    context: BrowserContext,
    result: PageResult,
    base: str,
    screenshot_dir: Path | None,
    require_math: bool,
    math_timeout_s: float,
) -> None:
    """Load one page, fill ``result`` with what was seen and its problems."""
    from playwright.sync_api import Error as PlaywrightError

    name = result.page
    external: list[str] = []

    def show(url: str) -> str:
        # Local URLs are shown relative to the server: the port changes on every run.
        return "/" + url[len(base) :] if url.startswith(base) else url

    def on_route(route: Route) -> None:
        url = route.request.url
        if is_local(url):
            route.continue_()
        else:
            external.append(url)
            route.abort("blockedbyclient")

    def on_websocket(ws: WebSocketRoute) -> None:
        result.requests.append(ws.url)
        if is_local(ws.url):
            ws.connect_to_server()
        else:
            external.append(ws.url)
            ws.close()

    def record_error(errors: list[str], text: str) -> None:
        if any(pat.search(text) for pat in KNOWN_BENIGN_ERRORS):
            result.ignored_errors.append(text)
        else:
            errors.append(text)

    def on_console(msg: ConsoleMessage) -> None:
        # "Failed to load resource" repeats a failed request or HTTP error, which are reported
        # with their URL from the network events instead.
        if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
            record_error(result.console_errors, msg.text)

    def on_response(resp: Response) -> None:
        if resp.status >= 400:
            result.bad_responses.append((resp.url, resp.status))

    page: Page = context.new_page()
    page.route("**/*", on_route)
    page.route_web_socket("**/*", on_websocket)
    page.on("request", lambda req: result.requests.append(req.url))
    page.on("requestfailed", lambda req: result.failed_requests.append((req.url, req.failure or "?")))
    page.on("response", on_response)
    page.on("console", on_console)
    page.on("pageerror", lambda exc: record_error(result.page_errors, str(exc)))
    problems = result.problems
    try:
        try:
            page.goto(result.url, wait_until="load", timeout=NAV_TIMEOUT_S * 1000)
            page.wait_for_load_state("networkidle", timeout=NAV_TIMEOUT_S * 1000)
        except PlaywrightError as exc:
            # Keep going: the checks below still say what is broken on a page that loaded partly.
            problems.append(Problem(name, "load error", str(exc).splitlines()[0]))

        images = page.evaluate(_IMAGES_JS, IMG_TIMEOUT_S * 1000)
        for img in images:
            if img["complete"] and img["width"] > 0:
                result.images_loaded += 1
            else:
                result.broken_images.append(img["src"] or "(no src)")
                problems.append(Problem(name, "broken image", img["src"] or show(img["url"]) or "(no src)"))

        math = page.evaluate(_MATH_JS, [math_timeout_s * 1000, require_math])
        result.math_markup, result.math_rendered = math["markup"], math["rendered"]
        result.math_unrendered, result.math_errors = math["unrendered"], math["errors"]
        if require_math and math["unrendered"]:
            problems.append(
                Problem(
                    name,
                    "math not rendered",
                    f"{math['unrendered']} of {math['markup']} math elements have no MathJax output "
                    f"after {math_timeout_s:g} s (is MathJax loaded locally?)",
                )
            )
        problems += [Problem(name, "math error", err) for err in math["errors"]]

        tables = page.evaluate(_TABLES_JS)
        result.tables_fit, result.tables_scrolling = tables["fit"], tables["scrolling"]
        problems += [Problem(name, "table cut off", t) for t in tables["clipped"]]

        hints = [h for h in page.evaluate(_HINTS_JS) if not is_local(h)]
        problems += [Problem(name, "external preconnect", h) for h in hints]

        if screenshot_dir is not None:
            shot = screenshot_dir / (name.replace("/", "__").removesuffix(".html") + ".png")
            page.screenshot(path=str(shot), full_page=True)
            result.screenshot = shot
    except PlaywrightError as exc:
        # e.g. the renderer crashed: report it for this page and go on with the others.
        problems.append(Problem(name, "check error", str(exc).splitlines()[0]))
    finally:
        page.close()

    result.external_requests = list(dict.fromkeys(external))
    problems += [Problem(name, "external request", u) for u in result.external_requests]
    for url, status in result.bad_responses:
        problems.append(Problem(name, f"HTTP {status}", show(url)))
    for url, error in result.failed_requests:
        if url not in external:  # aborted by us on purpose, already reported above
            problems.append(Problem(name, f"request failed ({error})", show(url)))
    problems += [Problem(name, "console error", text) for text in result.console_errors]
    problems += [Problem(name, "page error", text) for text in result.page_errors]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ltmpq.tools.bookcheck",
        description="Check that a built Jupyter Book works offline in headless Chromium.",
    )
    parser.add_argument("html_dir", type=Path, metavar="HTML_DIR", help="e.g. book/_build/html")
    parser.add_argument(
        "--pages", nargs="+", metavar="PAGE", help="pages relative to HTML_DIR (default: all)"
    )
    parser.add_argument("--screenshots", type=Path, metavar="DIR", help="save a full-page PNG per page here")
    parser.add_argument(
        "--no-require-math",
        dest="require_math",
        action="store_false",
        help="do not fail on math markup that MathJax did not render",
    )
    args = parser.parse_args(argv)
    report = check_site(args.html_dir, args.pages, args.screenshots, args.require_math)
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
