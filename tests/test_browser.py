"""What people see, in a real browser: the champion-vs-challenger report and the MLflow UI.

Headless Chromium (Debian's ``chromium``, which ``.ci/run`` installs when it is
missing) driven by Playwright. The registry is the session's registered test
project (tests/pipelines/test_inference.py) plus one worse CNN, so that the
report compares a challenger with a champion. Screenshots go to the test's
temporary folder, or to ``$DLFLOW_SCREENSHOTS`` (the README's pictures come
from there).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from tests.browser import Page
from tests.pipelines.test_inference import CNN_MODEL, SMALLER, _build_registered_project, _use_project, run_pipeline
from tests.serving.loopback import free_port, stop, wait_until_up

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

UI_STARTUP_SECONDS = 120
PAGE_SECONDS = 60


@pytest.fixture(scope="module")
def gated_registry(tmp_path_factory, data_mirror: Path) -> Iterator[Path]:
    """The registered test project with a second, much worse CNN: champion v1, challenger v2."""
    root = _build_registered_project(tmp_path_factory, data_mirror)
    with pytest.MonkeyPatch.context() as patch:
        _use_project(patch, root, data_mirror)
        client = MlflowClient()
        if "challenger" not in client.get_registered_model(CNN_MODEL).aliases:
            # one torch thread: a second one contending for the other core of a busy machine only slows it down
            run_pipeline("cnn", **SMALLER, **{"cnn.training.lr": 1e-6, "cnn.training.num_threads": 1})
        yield root


def test_promotion_report_renders_in_chromium(gated_registry: Path, browser, screenshots: Path) -> None:
    challenger = MlflowClient().get_model_version_by_alias(CNN_MODEL, "challenger")
    report = Path(mlflow.artifacts.download_artifacts(challenger.tags["promotion_report"]))
    view = Page(browser, width=1280)
    view.page.goto(report.as_uri())
    view.page.wait_for_load_state("load")

    assert view.page.title() and "champion vs challenger" in view.page.inner_text("h1")
    assert view.page.get_by_text("Not promoted").count() >= 1
    images = view.page.evaluate("Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])")
    assert images, "the report has no pictures"
    broken = [alt for alt, complete, width in images if not complete or width == 0]
    assert not broken, f"broken images: {broken}"
    assert not view.console_errors and not view.page_errors and not view.failed
    assert view.page.locator("#confusion_candidate").count() == 1 and view.page.locator("#confusion_champion").count() == 1
    pixels = view.screenshot(screenshots / "promotion_report.png", full_page=True)
    assert pixels.shape[0] > 1500  # the whole page: rules, metrics, confusion matrices, curves


@pytest.fixture(scope="module")
def mlflow_ui(gated_registry: Path) -> Iterator[str]:
    """``mlflow ui`` on the test project's store, on a free port of 127.0.0.1; its URL."""
    port = free_port()
    log = gated_registry / "mlflow-ui.log"
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", f"sqlite:///{gated_registry / 'mlruns' / 'mlflow.db'}",
               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]  # fmt: skip
    with log.open("w") as output:
        env = os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job consumer processes to start
        server = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, server, log, path="/health", what="mlflow ui", seconds=UI_STARTUP_SECONDS)
        yield url
    finally:
        stop(server)


def _close_assistant(view: Page) -> None:
    """MLflow 3.17 opens its GenAI assistant beside every page; close it for a clean picture."""
    close = view.page.locator("[aria-label*='Close' i]").filter(has=view.page.locator("svg"))
    if close.count():
        close.first.click()


def test_mlflow_ui_shows_the_champion_and_the_report_link(mlflow_ui: str, browser, screenshots: Path) -> None:
    client = MlflowClient()
    champion = client.get_model_version_by_alias(CNN_MODEL, "champion")
    challenger = client.get_model_version_by_alias(CNN_MODEL, "challenger")
    view = Page(browser)

    # the registered model: its description and the champion alias
    view.page.goto(f"{mlflow_ui}/#/models/{CNN_MODEL}")
    view.page.get_by_text("Image classifier (fast CNN)").first.wait_for(timeout=PAGE_SECONDS * 1000)
    _close_assistant(view)
    # MLflow 3.17 starts in its GenAI view; the "Model training" switch (top left, as the README says) leaves it
    switch = view.page.get_by_text("Model training", exact=True)
    box = switch.bounding_box()
    assert box is not None and box["x"] < 250 and box["y"] < 150, box
    switch.click()
    alias_chip = view.page.get_by_text(re.compile(r"^@\s+champion$"))  # the versions table's alias chip: "@ champion"
    alias_chip.first.scroll_into_view_if_needed()
    assert alias_chip.count() == 1 and alias_chip.first.is_visible()
    view.screenshot(screenshots / "mlflow_registered_model.png")

    # a version: its aliases, its description naming run, commit and classes, and the report link
    view.page.goto(f"{mlflow_ui}/#/models/{CNN_MODEL}/versions/{challenger.version}")
    link = view.page.get_by_role("link", name="Champion-vs-challenger report")
    link.wait_for(timeout=PAGE_SECONDS * 1000)
    assert view.page.get_by_text(re.compile(r"^@\s+challenger$")).count() == 1
    assert view.page.get_by_text(challenger.run_id).count() >= 1
    source_run = client.get_run(challenger.run_id).info.run_name  # the header links the run by its name
    view.page.get_by_role("link", name=source_run).first.wait_for(timeout=PAGE_SECONDS * 1000)
    view.screenshot(screenshots / "mlflow_model_version.png")
    with view.page.context.expect_page() as opened:  # MLflow opens description links in a new tab
        link.click()
    report = Page.wrap(opened.value)
    assert f"/runs/{challenger.run_id}/artifacts/registration/cnn/champion_vs_challenger.html" in report.page.url
    frame = report.page.frame_locator("iframe").first  # MLflow's artifact viewer shows the HTML in a frame
    frame.get_by_text(f"{CNN_MODEL} v{challenger.version}: champion vs challenger").wait_for(timeout=PAGE_SECONDS * 1000)
    _close_assistant(report)
    report.screenshot(screenshots / "mlflow_report_in_ui.png")
    report.page.close()

    # the champion's training run: named after what it is, in its family's experiment, described
    run = client.get_run(champion.run_id)
    view.page.goto(f"{mlflow_ui}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}")
    view.page.get_by_text(run.info.run_name).first.wait_for(timeout=PAGE_SECONDS * 1000)
    assert run.info.run_name.startswith("cnn fast fashion_mnist")
    assert view.page.get_by_text("dlflow/cnn").count() >= 1
    view.screenshot(screenshots / "mlflow_run.png")
    assert not view.page_errors, view.page_errors


def test_drift_report_renders_in_chromium(gated_registry: Path, data_mirror: Path, browser, screenshots: Path) -> None:
    """A batch of over-exposed images: the report says "Drift detected" first, shows every check and its plots."""
    from dlflow.sources.idx import read_idx, write_idx

    images = read_idx(data_mirror / "fashion-mnist" / "t10k-images-idx3-ubyte.gz")[8000:8300]
    write_idx(np.clip(images.astype(np.int32) + 90, 0, 255).astype(np.uint8), gated_registry / "bright.gz", gzip=True)
    run_pipeline("inference_cnn", images_path=str(gated_registry / "bright.gz"))
    view = Page(browser, width=1280)
    view.page.goto((gated_registry / "project" / "data/08_reporting/monitoring/cnn_drift_report.html").as_uri())
    view.page.wait_for_load_state("load")

    assert "Drift report" in view.page.inner_text("h1") and CNN_MODEL in view.page.title()
    assert view.page.locator(".verdict.drift").inner_text().startswith("Drift detected.")
    assert view.page.locator("tr.alert").count() >= 1  # the checks that fired, highlighted
    images = view.page.evaluate("Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])")
    assert [alt for alt, _, _ in images] == [
        "Predicted classes: share of records",
        "Confidence (top class probability)",
        "Input signals",
    ]
    assert all(complete and width > 300 for _, complete, width in images), images
    assert not view.console_errors and not view.page_errors and not view.failed
    pixels = view.screenshot(screenshots / "drift_report.png", full_page=True)
    assert pixels.shape[0] > 1000
