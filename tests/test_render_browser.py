"""The view in a real browser (headless Chromium): a `deeprel render` page, wrapping, and the service page's logic.

Skipped where /usr/bin/chromium is absent, unless DEEPREL_REQUIRE_BROWSER=1 makes that a failure.
"""

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deeprel.data.extraction import Extraction
from deeprel.data.text import Tokenizer
from deeprel.data.types import Document, Entity, Relation
from deeprel.visual import render_html, static_dir

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Mentions after astral characters (emoji, mathematical letters): a UTF-16 slip would shift them.
TOKENS = ("Ann", "😀", "works", "for", "𝔄cme", "Corp", "in", "Boston", ".")
GOLD_ENTITIES = (Entity("Peop", 0, 1), Entity("Org", 4, 6), Entity("Loc", 7, 8))
GOLD_RELATIONS = (Relation("Work_For", 0, 1), Relation("OrgBased_In", 1, 2))
GOLD = Document.from_tokens(TOKENS, GOLD_ENTITIES, GOLD_RELATIONS)
# a: entities right, one relation reversed; b: "Corp" for "𝔄cme Corp"; c: all right.
PREDICTED = {
    "a": (GOLD_ENTITIES, (Relation("Work_For", 1, 0), Relation("OrgBased_In", 1, 2))),
    "b": ((Entity("Peop", 0, 1), Entity("Org", 5, 6), Entity("Loc", 7, 8)), GOLD_RELATIONS),
    "c": (GOLD_ENTITIES, GOLD_RELATIONS),
}

# Label boxes of each SVG that intersect by more than a hair.
OVERLAPPING_LABELS = """() => {
  const clashes = [];
  for (const svg of document.querySelectorAll("svg.arcs")) {
    const boxes = [...svg.querySelectorAll("text")].map((t) => t.getBoundingClientRect());
    boxes.forEach((a, i) => boxes.slice(i + 1).forEach((b) => {
      const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
      const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
      if (w > 0.5 && h > 0.5) clashes.push([a.left, a.top, b.left, b.top]);
    }));
  }
  return clashes;
}"""

MARKED_TEXT = """() => [...document.querySelectorAll("mark.entity")].map((m) => [
  m.dataset.type, [...m.childNodes].filter((n) => n.nodeType === Node.TEXT_NODE).map((n) => n.textContent).join(""),
])"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        if os.environ.get("DEEPREL_REQUIRE_BROWSER") == "1":
            pytest.fail(f"DEEPREL_REQUIRE_BROWSER=1 but there is no {CHROMIUM}")
        pytest.skip(f"no browser at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page_errors() -> list[str]:
    return []


def open_page(browser: Any, url: str, width: int, errors: list[str], prepare: Any = None) -> Any:
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.on("pageerror", lambda error: errors.append(str(error)))
    if prepare:
        prepare(page)
    page.goto(url)
    return page


def test_comparison_page_marks_entities_and_draws_arcs(browser: Any, tmp_path: Path, page_errors: list[str]) -> None:
    path = tmp_path / "page.html"
    predicted = [Document.from_tokens(TOKENS, e, r, id=i) for i, (e, r) in PREDICTED.items()]
    path.write_text(render_html(predicted, [GOLD] * 3), encoding="utf-8")
    page = open_page(browser, path.as_uri(), 1400, page_errors)
    assert page.locator(".document").count() == 3
    assert page.locator("mark.entity").count() == 18
    assert page.evaluate(MARKED_TEXT)[:3] == [["Peop", "Ann"], ["Org", "𝔄cme Corp"], ["Loc", "Boston"]]
    assert page.locator("mark.entity .entity-type").all_inner_texts()[:3] == ["PEOP", "ORG", "LOC"]  # CSS capitals
    assert page.locator("path.arc").count() == 12 and page.locator("text.arc-label").count() == 12
    for index in (0, 1):
        assert page.locator(f".panel-body path.arc[data-relation='{index}']").count() == 6
    # a: the reversed Work_For is fp (predicted) and fn (gold); b: "Corp" is fp, "𝔄cme Corp" fn, and both
    # relations through it fail on both sides.
    assert page.locator("mark.entity.fp").count() == 1 and page.locator("mark.entity.fn").count() == 1
    assert page.locator("mark.entity.fp").get_attribute("data-type") == "Org"
    assert page.locator("path.arc.fp").count() == 3 and page.locator("path.arc.fn").count() == 3
    assert page.locator("path.arc.tp").count() == 6
    assert page.locator("text.arc-label.fp").all_text_contents() == ["Work_For", "Work_For", "OrgBased_In"]
    assert page.evaluate(OVERLAPPING_LABELS) == []
    assert "score" not in page.locator("mark.entity").first.get_attribute("title")  # gold has no scores
    page.get_by_label("only documents with errors").check()
    assert page.locator(".document").count() == 2
    assert page_errors == []


def test_a_narrow_view_wraps_sentences_into_rows_and_keeps_every_arc(
    browser: Any, tmp_path: Path, page_errors: list[str]
) -> None:
    tokens = "Ann 😀 , who works for 𝔄cme Corp in Boston , met Bob of the Ministry of Defence in Paris .".split()
    document = Document.from_tokens(
        tokens,
        (
            Entity("Peop", 0, 1, 0.9),
            Entity("Org", 6, 8, 0.8),
            Entity("Loc", 9, 10, 0.9),
            Entity("Peop", 12, 13, 0.7),
            Entity("Org", 15, 18, 0.9),
            Entity("Loc", 19, 20, 0.6),
        ),
        (
            Relation("Work_For", 0, 1, 0.9),
            Relation("OrgBased_In", 1, 2, 0.8),
            Relation("Live_In", 0, 2, 0.7),
            Relation("Work_For", 3, 4, 0.6),
            Relation("OrgBased_In", 4, 5, 0.5),
            Relation("Kill", 0, 3, 0.4),
        ),
        id="long",
    )
    path = tmp_path / "page.html"
    path.write_text(render_html([document]), encoding="utf-8")
    page = open_page(browser, path.as_uri(), 420, page_errors)
    assert page.locator(".sentence .row").count() > 2
    assert page.locator("path.arc").count() == 6 and page.locator("text.arc-label").count() == 6
    assert page.locator("path.arc-part").count() >= 1  # a relation across a row break continues on the next row
    assert page.evaluate(OVERLAPPING_LABELS) == []
    assert page.evaluate(
        "() => [...document.querySelectorAll('.sentences')].every(s => s.scrollWidth <= s.clientWidth)"
    )
    titles = page.locator("g.relation title").all_text_contents()
    assert "Ann → Bob: Kill · score 0.400" in titles
    assert page.evaluate(MARKED_TEXT)[1:3] == [["Org", "𝔄cme Corp"], ["Loc", "Boston"]]
    rows = page.locator(".sentence .row").count()
    page.set_viewport_size({"width": 1400, "height": 900})
    page.wait_for_function(f"document.querySelectorAll('.sentence .row').length < {rows}")
    assert page.locator("path.arc").count() == 6
    assert page_errors == []


SERVICE_TEXT = "Ann 😀 works for 𝔄cme in Rome."


def service_answer() -> dict[str, Any]:
    """What `POST /extract` answers for SERVICE_TEXT: ``Extraction.to_dict()`` of its predicted document."""
    document = Tokenizer().document(SERVICE_TEXT)
    (sentence,) = document.sentences
    assert sentence.tokens == ("Ann", "😀", "works", "for", "𝔄cme", "in", "Rome", ".")
    entities = (Entity("Peop", 0, 1, 0.9), Entity("Org", 4, 5, 0.8), Entity("Loc", 6, 7, 0.7))
    predicted = document.with_sentences([sentence.with_annotations(entities, (Relation("Work_For", 0, 1, 0.6),))])
    return Extraction.from_document(predicted).to_dict()


EXTRACTION = service_answer()
MODEL = {"name": "tiny", "version": "0.1.0", "entity_types": ["Loc", "Org", "Other", "Peop"], "relation_types": []}


def serve_page(answer: tuple[int, Any], requests: list[Any]) -> Any:
    """Playwright routes standing in for `deeprel serve`: the static files, /model, and /extract's ``answer``."""

    def handle(route: Any) -> None:
        path = route.request.url.split("deeprel.test/", 1)[1]
        if path == "":
            route.fulfill(path=str(static_dir() / "index.html"))
        elif path.startswith("static/"):
            route.fulfill(path=str(static_dir() / path.removeprefix("static/")))
        elif path == "model":
            route.fulfill(json=MODEL)
        elif path == "extract":
            requests.append(json.loads(route.request.post_data))
            route.fulfill(status=answer[0], json=answer[1])
        else:
            route.abort()

    return lambda page: page.route("http://deeprel.test/**", handle)


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        ((200, {"results": [EXTRACTION]}), "3 entities, 1 relation"),
        (
            (422, {"detail": [{"loc": ["body", "text"], "msg": "Field required", "type": "missing"}]}),
            "text: Field required",
        ),
        ((503, {"detail": "busy: 64 requests waiting; retry later"}), "busy: 64 requests waiting; retry later"),
    ],
)
def test_service_page_posts_the_text_and_shows_the_answer(
    browser: Any, answer: tuple[int, Any], status: str, page_errors: list[str]
) -> None:
    requests: list[Any] = []
    page = open_page(browser, "http://deeprel.test/", 1000, page_errors, serve_page(answer, requests))
    page.wait_for_selector("#model-labels .legend-item")
    page.fill("#text", SERVICE_TEXT)
    page.click("#submit")
    page.wait_for_function(
        "!document.getElementById('submit').disabled && document.getElementById('status').textContent"
    )
    assert requests == [{"text": SERVICE_TEXT}]
    assert status in page.inner_text("#status")
    if answer[0] == 200:
        assert page.evaluate(MARKED_TEXT) == [["Peop", "Ann"], ["Org", "𝔄cme"], ["Loc", "Rome"]]
        assert page.locator("#result path.arc[data-relation='0']").count() == 1
        assert page.locator("#result text.arc-label").all_text_contents() == ["Work_For"]
    else:
        assert page.locator("#status.error").count() == 1 and page.locator("#result mark").count() == 0
    assert page_errors == []


def test_the_stand_in_answer_is_an_extraction_record() -> None:
    """The service stand-in answers what `deeprel serve` would: entities where the text has them."""
    assert Extraction.from_dict(EXTRACTION, "EXTRACTION").to_dict() == EXTRACTION
    assert [(e["type"], SERVICE_TEXT[e["start_char"] : e["end_char"]]) for e in EXTRACTION["entities"]] == [
        ("Peop", "Ann"),
        ("Org", "𝔄cme"),
        ("Loc", "Rome"),
    ]
    assert [(e["start_char"], e["end_char"]) for e in EXTRACTION["entities"]] == [(0, 3), (16, 20), (24, 28)]
    assert EXTRACTION["relations"] == [{"type": "Work_For", "head": 0, "tail": 1, "score": 0.6}]
