"""The trajectory viewer in real headless Chromium (system chromium driven by Playwright)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from langchain_codevision.data.sources import make_sample
from langchain_codevision.eval.datasets import EvalItem, transformed_variants
from langchain_codevision.eval.runner import evaluate
from langchain_codevision.models import OfflineOrientationModel

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium (scripts/install-system-deps.sh)"
)
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def viewer(tmp_path_factory) -> Path:
    """A real run of the offline policy: an upright and a rotated page, both arms."""
    page = make_sample("read_line", 1).image
    base = EvalItem(
        id="page",
        question="Which rotation was applied (rotate_0 if none)?",
        answers=["rotate_0"],
        images=[page],
    )
    items = transformed_variants([base], ("source", "rotate_90"))
    items[1].answers = ["rotate_90"]
    out = tmp_path_factory.mktemp("viewer")
    run = evaluate(items, OfflineOrientationModel(), out, concurrency=2, progress=False)
    assert run.summary["arms"]["tool"]["accuracy"] == 1.0
    return run.files["viewer"]


@pytest.fixture(scope="module")
def browser_page(viewer, tmp_path_factory):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            offline=True,
        )
        page = context.new_page()
        page.goto(viewer.as_uri())
        yield page
        context.close()


def select(page, name: str, value: str) -> None:
    page.select_option(f"#f-{name}", value)


def test_steps_code_stdout_and_images_show(browser_page):
    page = browser_page
    assert page.locator("[data-testid=item]").count() == 4
    assert page.locator("#count").text_content() == "4 of 4"
    select(page, "arm", "tool")
    select(page, "transform", "rotate_90")
    item = page.locator("[data-testid=item]")
    assert item.count() == 1
    steps = item.locator("[data-testid=step]")
    assert steps.count() == 2
    assert "VERDICT rotate_90" in steps.nth(0).locator("pre.stdout").text_content()
    assert "image.rotate(270, expand=True)" in steps.nth(1).locator("pre.code").text_content()
    images = item.locator("img[data-testid=image]")
    assert images.count() == 3  # the input, then one image per step
    sizes = images.evaluate_all(
        "els => els.map(e => [e.complete, e.naturalWidth, e.naturalHeight])"
    )
    assert all(done and w > 0 and h > 0 for done, w, h in sizes)
    answer = item.locator("[data-testid=answer]").text_content()
    assert "rotate_90" in answer and "correct by rule release:exact" in answer
    select(page, "arm", "")
    select(page, "transform", "")


def test_filters_work(browser_page):
    page = browser_page
    select(page, "outcome", "wrong")
    shown = page.locator("[data-testid=item]")
    assert shown.count() == 2
    assert all(o == "wrong" for o in shown.evaluate_all("els => els.map(e => e.dataset.outcome)"))
    assert page.locator("[data-testid=step]").count() == 0  # the no-tool arm ran no code
    assert "<tool_call>" in page.locator("pre.reply").first.text_content()  # its own reply
    select(page, "outcome", "correct")
    assert page.locator("[data-testid=item]").count() == 2
    select(page, "outcome", "")
    select(page, "op", "rotate_270")
    assert page.locator("[data-testid=item]").count() == 1
    select(page, "op", "")
    page.fill("#f-text", "page@source")
    assert page.locator("[data-testid=item]").count() == 2
    page.fill("#f-text", "")
    assert page.locator("#count").text_content() == "4 of 4"
