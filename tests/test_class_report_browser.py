"""The class report in Debian's Chromium: the page opens from the disk, offline, and every picture loads.

A screenshot of the whole page lands in ``tests/artifacts/screenshots/`` (ignored by git), for a person to look at.
"""

from __future__ import annotations

import pytest

from autograder.grading import class_report, mistakes
from tests import browser_tools as bt
from tests.fixtures.class_with_known_mistakes import known_class

AVAILABLE, REASON = bt.browser_status()
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not AVAILABLE, reason=f"test dans le navigateur impossible : {REASON}"),
]


@pytest.mark.parametrize("anonymous", [False, True], ids=["nomme", "anonyme"])
def test_class_report_opens_offline_and_every_picture_loads(tmp_path, anonymous):
    from playwright.sync_api import sync_playwright

    known = known_class("tp1_gradients")
    questions = mistakes.questions_of(known.assignment, known.points)
    records = mistakes.records_of(known.outcomes, questions)
    grades = tmp_path / "grades"
    grades.mkdir()
    mistakes.write_csv(class_report.paths(grades, known.assignment)["erreurs"], records, questions)
    data, page_path = class_report.build(
        grades, known.assignment, records, questions, names=known.names, anonymous=anonymous, new_run=True
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(bt.CHROMIUM), args=bt.CHROMIUM_ARGS)
        context = browser.new_context(viewport=bt.VIEWPORT, offline=True)
        page = context.new_page()
        requests = []
        page.on("request", lambda request: requests.append(request.url))
        page.goto(page_path.as_uri())
        page.wait_for_load_state("load")
        images = page.locator("img").evaluate_all(
            "images => images.map(i => ({complete: i.complete, width: i.naturalWidth, alt: i.alt}))"
        )
        assert len(images) == 2
        assert all(i["complete"] and i["width"] > 0 and i["alt"] for i in images), images
        assert page.locator("h1").inner_text().startswith("Rapport de la classe")
        assert page.locator("#a-reprendre tbody tr").count() == len(data["a_reprendre"])
        # Nothing but the page itself (its pictures are data: URIs).
        assert [url for url in requests if not url.startswith(("file:", "data:"))] == []
        bt.SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shot = bt.SCREENSHOTS / f"rapport_de_classe_{'anonyme' if anonymous else 'nomme'}.png"
        page.screenshot(path=str(shot), full_page=True)
        context.close()
        browser.close()
    assert shot.stat().st_size > 10_000
