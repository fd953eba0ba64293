"""The HTTP service: request validation, limits, batching of concurrent requests, errors, the model's page,
the API key."""

import asyncio
import json
import logging
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

import deeprel
from deeprel.api import ExtractedEntity, ExtractedSentence, Extraction, Extractor
from deeprel.cli import main
from deeprel.data.types import Document
from deeprel.serving import ServeSettings, create_app
from deeprel.serving.auth import configured_api_key

SENTENCE = "In 1752, flagmaker Betsy Ross was born in Philadelphia."
LIMITS = ServeSettings(max_body_bytes=20_000, max_text_chars=2_000, max_texts=4, batch_size=64, max_wait_ms=20)


@pytest.fixture(scope="module")
def extractor(trained_run: Path) -> Extractor:
    # fp32: under bf16 a sentence's scores move by up to ~0.01 with the batch it shares (its padding), and
    # these tests compare batched answers with one-by-one ones.
    return deeprel.load(trained_run / "model", device="cpu", precision="fp32")


@pytest.fixture()
def client(extractor: Extractor):
    with TestClient(create_app(extractor, LIMITS, name="tiny"), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def conll04_texts(data_dir: Path) -> list[str]:
    documents = json.loads((data_dir / "datasets" / "conll04" / "conll04_test.json").read_text(encoding="utf-8"))
    return [" ".join(document["tokens"]) for document in documents[:30]]


def as_json(value: Any) -> Any:
    return json.loads(json.dumps(value))


def test_extract_one_text_gives_what_the_python_api_gives(client: TestClient, extractor: Extractor) -> None:
    response = client.post("/extract", json={"text": SENTENCE})
    assert response.status_code == 200
    body = response.json()
    assert body == {"results": [as_json(extractor(SENTENCE).to_dict())]}
    [result] = body["results"]
    assert {(e["type"], e["text"]) for e in result["entities"]} >= {("Peop", "Betsy Ross"), ("Loc", "Philadelphia")}
    assert [r["type"] for r in result["relations"]] == ["Live_In"]


def test_extract_a_list_gives_one_result_per_text_in_order(client: TestClient, extractor: Extractor) -> None:
    texts = [SENTENCE, "", "John Smith lives in Boston. He was born in Paris."]
    response = client.post("/extract", json={"texts": texts})
    assert response.status_code == 200
    assert response.json() == {"results": as_json([result.to_dict() for result in extractor(texts)])}
    assert [len(result["sentences"]) for result in response.json()["results"]] == [1, 0, 2]


def test_a_request_threshold_filters_relations(client: TestClient) -> None:
    def relations(threshold: float) -> list[dict[str, Any]]:
        response = client.post("/extract", json={"text": SENTENCE, "threshold": threshold})
        assert response.status_code == 200
        return response.json()["results"][0]["relations"]

    low, high = relations(0.01), relations(0.7)
    assert len(low) > len(high) >= 1
    assert high == [r for r in low if r["score"] >= 0.7]
    assert relations(0.99) == []


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"text": "a", "texts": ["b"]},
        {"text": None},
        {"text": 5},
        {"texts": "not a list"},
        {"texts": ["a", 7]},
        {"texts": []},
        {"text": "a", "language": "en"},
        {"text": "a", "threshold": 0},
        {"text": "a", "threshold": 1},
        {"text": "a", "threshold": "high"},
        ["a list", "not an object"],
    ],
)
def test_bad_bodies_are_rejected_with_422_and_a_reason(client: TestClient, body: Any) -> None:
    response = client.post("/extract", json=body)
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert errors and all(error["msg"] and "input" not in error for error in errors)


def test_a_body_that_is_not_json_gets_422(client: TestClient) -> None:
    response = client.post("/extract", content=b"text=hello", headers={"content-type": "application/json"})
    assert response.status_code == 422


def test_one_of_text_or_texts_is_named_when_both_or_neither_are_given(client: TestClient) -> None:
    for body in ({}, {"text": "a", "texts": ["b"]}):
        assert "exactly one of 'text'" in client.post("/extract", json=body).json()["detail"][0]["msg"]


def test_a_too_long_text_is_rejected_naming_the_limit(client: TestClient) -> None:
    for body in ({"text": "a" * 2_001}, {"texts": ["short", "a" * 2_001]}):
        response = client.post("/extract", json=body)
        assert response.status_code == 422
        assert "at most 2000 characters" in response.json()["detail"][0]["msg"]
    assert client.post("/extract", json={"text": "a " * 1_000}).status_code == 200


def test_too_many_texts_are_rejected_naming_the_limit(client: TestClient) -> None:
    response = client.post("/extract", json={"texts": ["a"] * 5})
    assert response.status_code == 422
    assert "at most 4 items" in response.json()["detail"][0]["msg"]
    assert client.post("/extract", json={"texts": ["a"] * 4}).status_code == 200


def test_a_too_large_body_gets_413_whatever_content_length_says(client: TestClient) -> None:
    body = json.dumps({"texts": ["word " * 399] * 12}).encode()  # 24 kB of valid JSON
    expected = {"detail": "request body too large: the limit is 20000 bytes"}
    honest = client.post("/extract", content=body, headers={"content-type": "application/json"})
    lying = client.post("/extract", content=body, headers={"content-type": "application/json", "content-length": "20"})
    chunked = client.post("/extract", content=iter([body[:10_000], body[10_000:]]))  # no Content-Length at all
    for response in (honest, lying, chunked):
        assert response.status_code == 413
        assert response.json() == expected


def test_health(client: TestClient) -> None:
    response = client.get("/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_model_describes_the_loaded_model(client: TestClient, extractor: Extractor) -> None:
    info = client.get("/model").json()
    assert info == {
        "name": "tiny",
        "version": deeprel.__version__,
        "entity_types": ["Loc", "Org", "Other", "Peop"],
        "relation_types": ["Kill", "Live_In", "Located_In", "OrgBased_In", "Work_For"],
        "threshold": 0.5,  # configs/tiny.toml
        "device": "cpu",
        "precision": "fp32",
        "meta": as_json(extractor.meta),
        "workers": 1,
    }
    assert info["meta"]["train_documents"] == 60


def test_a_model_directory_is_loaded_with_the_settings(trained_run: Path) -> None:
    settings = ServeSettings(threshold=0.8, device="cpu", num_threads=2, precision="bf16", entity_scores=False)
    with TestClient(create_app(trained_run / "model", settings)) as client:
        info = client.get("/model").json()
        response = client.post("/extract", json={"text": SENTENCE})
    assert (info["name"], info["threshold"]) == (trained_run.name, 0.8)  # RUN/model is named after RUN
    assert info["precision"] == "bf16"
    assert response.json()["results"][0]["entities"]
    assert all(entity["score"] is None for entity in response.json()["results"][0]["entities"])
    assert all(relation["score"] >= 0.8 for relation in response.json()["results"][0]["relations"])


def test_openapi_documents_the_extract_request_and_response(client: TestClient, extractor: Extractor) -> None:
    schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/extract"]["post"]
    components = schema["components"]["schemas"]

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        return components[node["$ref"].rsplit("/", 1)[1]]

    request = resolve(operation["requestBody"]["content"]["application/json"]["schema"])
    assert set(request["properties"]) == {"text", "texts", "threshold"}
    assert request["additionalProperties"] is False
    texts = next(option for option in request["properties"]["texts"]["anyOf"] if option.get("type") == "array")
    assert (texts["minItems"], texts["maxItems"], texts["items"]["maxLength"]) == (1, 4, 2_000)

    response = resolve(operation["responses"]["200"]["content"]["application/json"]["schema"])
    assert set(response["properties"]) == {"results"}
    extraction = resolve(response["properties"]["results"]["items"])
    assert (
        set(extraction["properties"]) == {"text", "sentences", "entities", "relations"} == set(Extraction.model_fields)
    )
    assert set(extraction["required"]) == set(extraction["properties"])
    sentence = resolve(extraction["properties"]["sentences"]["items"])
    entity = resolve(extraction["properties"]["entities"]["items"])
    relation = resolve(extraction["properties"]["relations"]["items"])
    assert (
        set(sentence["properties"])
        == set(ExtractedSentence.model_fields)
        == set(extractor(SENTENCE).to_dict()["sentences"][0])
    )
    assert (
        set(entity["properties"])
        == set(ExtractedEntity.model_fields)
        == set(extractor(SENTENCE).to_dict()["entities"][0])
    )
    # The response documents what is written: a relation names its entities by index, not as objects.
    assert set(relation["properties"]) == {"type", "head", "tail", "score"}
    assert relation["properties"]["head"]["type"] == relation["properties"]["tail"]["type"] == "integer"
    assert relation["properties"]["type"]["type"] == "string"
    assert {"type": "null"} in relation["properties"]["score"]["anyOf"]  # null for gold
    assert entity["properties"]["start_char"]["type"] == entity["properties"]["sentence"]["type"] == "integer"
    assert {"413", "422", "503"} <= set(operation["responses"])


def test_the_visualiser_page_and_its_files_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="extract-form"' in page.text
    script = client.get("/static/deeprel-view.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert client.get("/static/no-such-file.js").status_code == 404


async def post_all(app: FastAPI, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    """All ``bodies`` posted to ``/extract`` at once, with the app's lifespan (its batch worker) running."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            return await asyncio.gather(*(client.post("/extract", json=body) for body in bodies))


def assert_same_extraction(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    """Equal, but for scores: a batch mixing other sentences pads differently, moving the 4th decimal."""
    assert (actual["text"], actual["sentences"]) == (expected["text"], expected["sentences"])
    for kind in ("entities", "relations"):
        assert [{**x, "score": None} for x in actual[kind]] == [{**x, "score": None} for x in expected[kind]]
        assert [x["score"] for x in actual[kind]] == pytest.approx([x["score"] for x in expected[kind]], abs=2e-3)


def test_concurrent_requests_are_batched_and_each_gets_its_own_results(
    extractor: Extractor, conll04_texts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = {text: as_json(extractor(text).to_dict()) for text in conll04_texts}
    bodies = [{"text": text} for text in conll04_texts[:20]]
    bodies += [{"texts": conll04_texts[k : k + 2]} for k in range(20, 30, 2)]
    calls: list[int] = []
    extract = extractor.extract_documents

    def counted(documents: list[Document]) -> list[Any]:
        calls.append(len(documents))
        return extract(documents)

    monkeypatch.setattr(extractor, "extract_documents", counted)
    responses = asyncio.run(post_all(create_app(extractor, LIMITS), bodies))

    assert [response.status_code for response in responses] == [200] * len(bodies)
    for body, response in zip(bodies, responses, strict=True):
        texts = [body["text"]] if "text" in body else body["texts"]
        results = response.json()["results"]
        assert len(results) == len(texts)
        for text, result in zip(texts, results, strict=True):
            assert_same_extraction(result, expected[text])
    assert sum(calls) == len(conll04_texts)
    assert len(calls) < len(bodies)  # requests shared model calls
    assert max(calls) > 1


def test_a_full_queue_answers_503_with_retry_after(extractor: Extractor, monkeypatch: pytest.MonkeyPatch) -> None:
    entered, release = threading.Event(), threading.Event()
    extract = extractor.extract_documents

    def blocked(documents: list[Document]) -> list[Any]:
        entered.set()
        release.wait(timeout=30)
        return extract(documents)

    monkeypatch.setattr(extractor, "extract_documents", blocked)
    app = create_app(extractor, ServeSettings(max_queue=2, retry_after_seconds=3))

    async def scenario() -> tuple[list[httpx.Response], httpx.Response]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
                first = asyncio.create_task(client.post("/extract", json={"text": SENTENCE}))
                while not entered.is_set():  # the first request is in the model, which now waits
                    await asyncio.sleep(0.01)
                second = asyncio.create_task(client.post("/extract", json={"text": "John lives in Boston."}))
                await asyncio.sleep(0.3)  # the second is queued behind it
                rejected = await client.post("/extract", json={"text": "One too many."})
                release.set()
                return list(await asyncio.gather(first, second)), rejected

    admitted, rejected = asyncio.run(scenario())
    assert rejected.status_code == 503
    assert rejected.headers["retry-after"] == "3"
    assert "the limit is 2" in rejected.json()["detail"]
    assert [response.status_code for response in admitted] == [200, 200]


def test_an_internal_error_is_a_500_without_a_traceback(
    client: TestClient, extractor: Extractor, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(documents: list[Document]) -> list[Any]:
        raise RuntimeError("secret detail of the failure")

    monkeypatch.setattr(extractor, "extract_documents", broken)
    with caplog.at_level(logging.ERROR, logger="deeprel.serving"):
        response = client.post("/extract", json={"text": SENTENCE})
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error"}
    assert "secret" not in response.text and "Traceback" not in response.text
    [record] = [r for r in caplog.records if r.name.startswith("deeprel.serving")]
    assert record.exc_info is not None and "secret detail" in str(record.exc_info[1])


def test_a_failing_text_fails_only_its_own_request(
    extractor: Extractor, conll04_texts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    extract = extractor.extract_documents
    calls: list[list[str]] = []

    def fails_on_poison(documents: list[Document]) -> list[Any]:
        texts = [document.text for document in documents]
        calls.append(texts)
        if "poison" in texts:
            raise ValueError("cannot extract")
        return extract(documents)

    monkeypatch.setattr(extractor, "extract_documents", fails_on_poison)
    bodies = [{"text": text} for text in conll04_texts[:4]] + [{"text": "poison"}]
    settings = ServeSettings(batch_size=64, max_wait_ms=500)  # time enough for all five to share a batch
    responses = asyncio.run(post_all(create_app(extractor, settings), bodies))
    assert [response.status_code for response in responses] == [200, 200, 200, 200, 500]
    assert len(calls[0]) == 5  # the shared batch failed, then each request was tried alone
    assert sorted(map(tuple, calls[1:])) == sorted((body["text"],) for body in bodies)


def test_serve_fails_fast_on_a_bad_model_directory(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["serve", str(tmp_path / "missing"), "--port", "0"])
    assert result.exit_code == 2
    assert f"error: {tmp_path / 'missing'}: no such model directory" in result.output


def test_serve_with_several_workers_fails_fast_on_a_bad_model_directory(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["serve", str(tmp_path / "missing"), "--workers", "2", "--port", "0"])
    assert result.exit_code == 2
    assert f"error: {tmp_path / 'missing'}: no such model directory" in result.output


KEY = "s3cret-Key_0123"


@pytest.fixture()
def keyed_client(extractor: Extractor):
    settings = LIMITS.model_copy(update={"api_key": configured_api_key(None, {"DEEPREL_API_KEY": f" {KEY}\n"})})
    with TestClient(create_app(extractor, settings, name="tiny"), raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "this service needs an API key: Authorization: Bearer <key>"),
        ({"Authorization": f"Bearer {KEY}x"}, "invalid API key"),
        ({"Authorization": f"Bearer {KEY[:-1]}"}, "invalid API key"),
        ({"Authorization": f"Basic {KEY}"}, "invalid API key"),
        ({"Authorization": KEY}, "invalid API key"),
    ],
)
def test_with_an_api_key_a_request_without_it_gets_401(
    keyed_client: TestClient, headers: dict[str, str], detail: str
) -> None:
    for method, path, body in [("POST", "/extract", {"text": SENTENCE}), ("GET", "/model", None), ("GET", "/", None)]:
        response = keyed_client.request(method, path, json=body, headers=headers)
        assert (response.status_code, response.json()) == (401, {"detail": detail})
        assert response.headers["www-authenticate"] == "Bearer"
        assert KEY not in response.text


def test_with_an_api_key_the_right_key_is_served_and_health_is_open(
    keyed_client: TestClient, extractor: Extractor
) -> None:
    for scheme in ("Bearer", "bearer"):
        response = keyed_client.post("/extract", json={"text": SENTENCE}, headers={"Authorization": f"{scheme} {KEY}"})
        assert response.json() == {"results": [as_json(extractor(SENTENCE).to_dict())]}
    info = keyed_client.get("/model", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert KEY not in json.dumps(info)
    assert keyed_client.get("/health").json() == {"status": "ok"}
    assert keyed_client.post("/health").status_code == 401  # only GET /health is open


def test_the_api_key_appears_in_no_repr_or_dump() -> None:
    settings = ServeSettings(api_key=KEY)
    assert KEY not in repr(settings) and KEY not in str(settings)
    assert KEY not in settings.model_dump_json() and KEY not in str(settings.model_dump())
    assert KEY in settings.model_dump_json(context={"reveal_secrets": True})  # for the worker processes only
    with pytest.raises(ValidationError):
        ServeSettings(api_key="")  # would let "Authorization: Bearer" alone in


def test_the_api_key_comes_from_the_file_before_the_environment(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(f"  {KEY}\n\n", encoding="utf-8")
    environ = {"DEEPREL_API_KEY": "from-the-environment"}
    assert configured_api_key(key_file, environ).get_secret_value() == KEY
    assert configured_api_key(None, environ).get_secret_value() == "from-the-environment"
    assert configured_api_key(None, {}) is None


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "cannot read the API key: No such file or directory"),
        (" \n", "the API key is empty"),
        ("two words", "the API key must be printable ASCII without spaces"),
        (b"\xff\xfe", "cannot read the API key"),
    ],
)
def test_a_bad_api_key_file_is_a_usage_error_naming_it(
    tmp_path: Path, content: str | bytes | None, reason: str
) -> None:
    key_file = tmp_path / "key"
    if isinstance(content, str):
        key_file.write_text(content, encoding="utf-8")
    elif isinstance(content, bytes):
        key_file.write_bytes(content)
    result = CliRunner().invoke(main, ["serve", str(tmp_path / "model"), "--api-key-file", str(key_file)])
    assert result.exit_code == 2
    assert f"{key_file}: {reason}" in result.output
    assert "no such model directory" not in result.output  # the key is checked first


def test_an_empty_api_key_in_the_environment_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["serve", str(tmp_path / "model")], env={"DEEPREL_API_KEY": ""})
    assert result.exit_code == 2
    assert "$DEEPREL_API_KEY: the API key is empty" in result.output
