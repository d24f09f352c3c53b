"""The documentation site, as a reader sees it: built with ``mkdocs build --strict``, served, opened in Chromium.

The site is built from the project's own ``mkdocs.yml`` into a temporary folder and served over HTTP on
127.0.0.1 (Material's search runs in a web worker, which a ``file://`` page cannot start). Headless
Chromium (Debian's, driven by Playwright, as in ``tests/test_browser.py``) renders the home page (the
README) and the monitoring page: their titles and headings, every navigation link followed, no console
or page errors, no failed request, and a screenshot that is not blank. The performance page is checked
against the JSON files its tables are rendered from. Screenshots go to the test's temporary folder, or
to ``$DLFLOW_SCREENSHOTS``.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

from tests.browser import Page

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[1]
BUILD_SECONDS = 120


def build_site(project: Path, site: Path) -> subprocess.CompletedProcess:
    """``mkdocs build --strict`` of ``project``'s mkdocs.yml into ``site``."""
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")  # Material's banner about MkDocs 2.0: not our warning
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(project / "mkdocs.yml"), "-d", str(site)]
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=BUILD_SECONDS)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("docs") / "site"
    built = build_site(ROOT, folder)
    assert built.returncode == 0, f"mkdocs build --strict failed:\n{built.stdout}\n{built.stderr}"
    assert (folder / "index.html").is_file() and (folder / "monitoring" / "index.html").is_file()
    return folder


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args) -> None:  # noqa: A002 (the base class's name)
        pass


@pytest.fixture(scope="module")
def served(site: Path) -> Iterator[str]:
    """The built site over HTTP on a free port of 127.0.0.1; its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, name="docs-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def assert_links_resolve(view: Page, urls: list[str], base: str) -> None:
    """Every link to this site answers 200, and a link to a heading finds that heading on its page."""
    pages: dict[str, str] = {}
    for url in dict.fromkeys(urls):
        if not url.startswith(base):
            continue  # not this site's
        address, _, anchor = url.partition("#")
        if address not in pages:
            response = view.page.request.get(address)
            assert response.status == 200, f"{url}: HTTP {response.status}"
            pages[address] = response.text()
        if anchor:
            assert f'id="{anchor}"' in pages[address], f"{url}: no heading #{anchor} on {address}"


def test_home_page_is_the_readme(served: str, browser, screenshots: Path) -> None:
    view = Page(browser)
    view.open(served)

    assert view.page.title() == "dlflow"
    assert view.headings("h1") == ["dlflow"]
    assert {"Quick start", "Documentation"} <= set(view.headings("h2"))
    commands = view.page.locator("article pre").first.inner_text()
    assert "pip install -e . && kedro run" in commands and 'pip install -e ".[test]" && .ci/test' in commands
    assert view.page.locator("article table").count() >= 2  # the pipelines, the pages
    images = view.page.evaluate(
        "Array.from(document.querySelectorAll('article img')).map(i => [i.src, i.complete, i.naturalWidth])"
    )
    assert images and all(complete and width > 0 for _, complete, width in images), images

    navigation = view.links("nav.md-nav--primary a.md-nav__link[href]")
    assert len(navigation) >= 14, navigation
    assert_links_resolve(view, navigation + view.links("article a[href]"), served)
    assert not any(url.endswith(".md") or "/docs/" in urlsplit(url).path for url in view.links("article a[href]"))
    view.assert_clean()
    view.screenshot(screenshots / "docs_home.png")


def test_monitoring_page_renders(served: str, browser, screenshots: Path) -> None:
    view = Page(browser)
    view.open(urljoin(served, "monitoring/"))

    assert view.page.title() == "Monitoring - dlflow"
    assert view.headings("h1") == ["Monitoring"]
    sections = set(view.headings("h2"))
    assert {"The reference profile", "The checks", "The policy and the decision", "The alert and the exit status"} <= sections
    assert view.page.get_by_text("reference_profile.npz").count() >= 1
    assert view.page.locator("article table").count() >= 2  # the checks, the policy
    current = view.page.locator("nav.md-nav--primary .md-nav__link--active").all_inner_texts()
    assert any("Monitoring" in text for text in current), current

    assert_links_resolve(view, view.links("nav.md-nav--primary a.md-nav__link[href]") + view.links("article a[href]"), served)
    view.assert_clean()
    pixels = view.screenshot(screenshots / "docs_monitoring.png", full_page=True)
    assert pixels.shape[0] > 2000  # the whole page


def test_performance_tables_come_from_the_results(served: str, browser) -> None:
    results = ROOT / "benchmarks" / "results"
    view = Page(browser)
    view.open(urljoin(served, "performance/"))
    text = view.page.locator("article").inner_text()

    cnn = json.loads((results / "cnn_benchmark.json").read_text())
    assert f"{100 * cnn['results']['default']['accuracy']:.2f} %" in text
    assert f"Machine: {cnn['machine']['cpu']}" in text and "bf16 native" in text and "AVX2 emulated" in text
    for path in sorted(results.glob("*.json")):  # each in full, or as a row of a table of runs
        assert re.search(rf"(?<![\w-]){re.escape(path.name)}", text), f"{path.name} is not on the performance page"
    assert view.page.locator("article table").count() >= 10
    view.assert_clean()


def test_a_new_results_file_shows_without_an_edit(tmp_path: Path) -> None:
    """A benchmark added later (here a made-up shape) is rendered under *Other measurements* by the build alone."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("mkdocs.yml", "README.md"):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(ROOT / "docs", project / "docs")
    shutil.copytree(ROOT / "benchmarks" / "results", project / "benchmarks" / "results")
    new = {"machine": {"cpu": "Made-up CPU", "cpus": 2, "bf16_native": False}, "requests_per_second": {"one worker": 68.25, "two": 178.5},
           "rows": [{"condition": "clean", "alarm_rate": 0.025}, {"condition": "noise", "alarm_rate": 0.975}]}  # fmt: skip
    (project / "benchmarks" / "results" / "zz_new_benchmark.json").write_text(json.dumps(new))

    built = build_site(project, tmp_path / "site")
    assert built.returncode == 0, built.stderr
    page = (tmp_path / "site" / "performance" / "index.html").read_text()
    for expected in ("zz_new_benchmark.json", "Made-up CPU", "no native bf16", "178.5", "0.9750", "noise"):
        assert expected in page, expected
