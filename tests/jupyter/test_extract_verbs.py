"""classify and generate on the extraction machinery, and every option checked before anything
is sent (counted at the local gateway: not even ``/health``)."""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
import pytest
from pydantic import BaseModel

import koine_jupyter
from koine_jupyter.extraction import (
    aclassify,
    agenerate,
    classify,
    clear_cache,
    extract,
    generate,
    history,
    retry_failed,
)
from koine_sdk import KoineError, SyncKoineClient, create_koine, create_koine_sync
from koine_sdk.testing import LocalGateway

LABELS = ["positive", "negative", "neutral"]


class Mood(enum.Enum):
    HAPPY = "happy"
    SAD = "sad"


class Review(BaseModel):
    stars: int


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def client(koine_gateway: LocalGateway) -> Iterator[SyncKoineClient]:
    c = create_koine_sync(base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key)
    yield c
    c.close()


def sent(gw: LocalGateway, path: str) -> int:
    return sum(1 for r in gw.requests if r.path == path)


# -- every bad argument is refused before anything is sent ------------------------------------

BAD_OPTIONS: list[dict[str, Any]] = [
    {"timeout": -1},
    {"timeout": 0},
    {"timeout": float("inf")},
    {"timeout": "5"},
    {"model": 5},
    {"model": "  "},
    {"allowed_tools": "Bash"},
    {"allowed_tools": [1]},
    {"allowed_tools": [""]},
    {"system": 5},
    {"concurrency": 0},
    {"concurrency": 1.5},
    {"max_retries": -1},
    {"max_retry_after": float("nan")},
    {"max_outage": -1},
    {"max_rows": True},
    {"max_tokens": -5},
    {"sample": -1},
    {"repairs": -1},
    {"cache": "yes"},
    {"progress": "bogus"},
    {"on_interrupt": "ignore"},
    {"ledger": 5},
    {"client": 5},
    {"client": []},
    {"no_such_option": 1},
    {"verb": "x"},
    {"cls": 1},
]

VERBS: dict[str, Callable[..., Any]] = {
    "extract": lambda texts, **o: extract(texts, Review, "Rate: {text}", **o),
    "classify": lambda texts, **o: classify(texts, LABELS, **o),
    "generate": lambda texts, **o: generate(texts, "Summarise: {text}", **o),
}


@pytest.mark.parametrize("verb", sorted(VERBS))
@pytest.mark.parametrize(
    "bad", BAD_OPTIONS, ids=lambda b: "-".join(f"{k}={v!r}" for k, v in b.items())
)
def test_bad_option_is_refused_with_nothing_sent(
    koine_gateway: LocalGateway, client: SyncKoineClient, verb: str, bad: dict[str, Any]
) -> None:
    options: dict[str, Any] = {"client": client, "progress": False, **bad}
    with pytest.raises(KoineError) as info:
        VERBS[verb](["a text", "another"], **options)
    assert info.value.code == "INVALID_ARGUMENT"
    name = next(iter(bad))
    assert name in info.value.message
    assert koine_gateway.requests == []  # not even /health


@pytest.mark.parametrize(
    ("labels", "prompt", "reason", "says"),
    [
        ([], None, False, "empty"),
        (["a", "b", "a"], None, False, "repeated"),
        ([1, 2], None, False, "strings"),
        ("positive", None, False, "Enum"),
        (["a", ""], None, False, "empty strings"),
        (LABELS, "Label this text", False, "{text}"),
        (LABELS, 5, False, "string"),
        (LABELS, None, "yes", "reason"),
    ],
)
def test_bad_classify_input_is_refused_with_nothing_sent(
    koine_gateway: LocalGateway,
    client: SyncKoineClient,
    labels: Any,
    prompt: Any,
    reason: Any,
    says: str,
) -> None:
    with pytest.raises(KoineError) as info:
        classify(["a"], labels, prompt, reason=reason, client=client, progress=False)
    assert info.value.code == "INVALID_ARGUMENT"
    assert says in info.value.message
    assert koine_gateway.requests == []


@pytest.mark.parametrize(
    ("prompt", "options", "says"),
    [
        ("Summarise this", {}, "{text}"),
        (None, {}, "string"),
        ("Summarise {text}", {"repairs": 1}, "repairs"),
    ],
)
def test_bad_generate_input_is_refused_with_nothing_sent(
    koine_gateway: LocalGateway,
    client: SyncKoineClient,
    prompt: Any,
    options: dict[str, Any],
    says: str,
) -> None:
    with pytest.raises(KoineError) as info:
        generate(["a"], prompt, client=client, progress=False, **options)
    assert info.value.code == "INVALID_ARGUMENT"
    assert says in info.value.message
    assert koine_gateway.requests == []


async def test_async_verbs_refuse_bad_options_too(koine_gateway: LocalGateway) -> None:
    async with create_koine(
        base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key
    ) as koine:
        for call in (
            aclassify(["a"], LABELS, client=koine, timeout=0, progress=False),
            agenerate(["a"], "x {text}", client=koine, allowed_tools="Bash", progress=False),
            agenerate(["a"], "x {text}", client=koine, on_interrupt="raise", progress=False),
        ):
            with pytest.raises(KoineError) as info:
                await call
            assert info.value.code == "INVALID_ARGUMENT"
    assert koine_gateway.requests == []


# -- classify ----------------------------------------------------------------------------------


def _check_classify_dtypes(df: pd.DataFrame, labels: list[str], reason: bool) -> None:
    expected = ["label", *(["reason"] if reason else [])]
    expected += ["error", "input_tokens", "output_tokens", "attempts", "answer_from"]
    assert list(df.columns) == expected
    dtype = df["label"].dtype
    assert isinstance(dtype, pd.CategoricalDtype)
    assert list(dtype.categories) == labels
    if reason:
        assert str(df["reason"].dtype) == "string"
    assert str(df["error"].dtype) == "string"
    assert str(df["input_tokens"].dtype) == "Int64"
    assert str(df["answer_from"].dtype) == "string"


@pytest.mark.parametrize("reason", [False, True])
def test_classify_dtypes_empty_failed_and_mixed(
    koine_gateway: LocalGateway, client: SyncKoineClient, reason: bool
) -> None:
    empty = classify([], LABELS, reason=reason, client=client, progress=False)
    _check_classify_dtypes(empty, LABELS, reason)
    assert len(empty) == 0

    failed = classify(
        ["x [[fail]]", "y [[fail]]"], LABELS, reason=reason, client=client, progress=False
    )
    _check_classify_dtypes(failed, LABELS, reason)
    assert failed["label"].isna().all() and failed["error"].notna().all()

    texts = pd.Series(["good one", "bad [[fail]]", None, "fine"], index=[7, 8, 9, 10])
    mixed = classify(texts, LABELS, reason=reason, client=client, progress=False)
    _check_classify_dtypes(mixed, LABELS, reason)
    assert list(mixed.index) == [7, 8, 9, 10]
    assert mixed["error"].isna().tolist() == [True, False, False, True]
    assert set(mixed.loc[[7, 10], "label"]) <= set(LABELS)
    assert mixed.loc[[8, 9], "label"].isna().all()
    if reason:
        assert mixed.loc[[7, 10], "reason"].notna().all()
    # The schema sent allows only the labels.
    body = json.loads(next(r for r in koine_gateway.requests if r.path == "/generate-object").body)
    assert body["schema"]["properties"]["label"]["enum"] == LABELS


def test_the_progress_line_names_the_verb_that_ran(
    client: SyncKoineClient, capsys: pytest.CaptureFixture[str]
) -> None:
    texts = ["one", "two", "three"]
    runs: dict[str, Callable[[], Any]] = {
        "classify": lambda: classify(texts, LABELS, client=client, progress="text"),
        "generate": lambda: generate(texts, "Say: {text}", client=client, progress="text"),
        "extract": lambda: extract(texts, Review, client=client, progress="text"),
    }
    for verb, run in runs.items():
        capsys.readouterr()
        run()
        err = capsys.readouterr().err
        assert err.strip().splitlines()[-1].startswith(f"{verb} 3/3 done"), err
        others = set(runs) - {verb}
        assert not any(other in err.split() for other in others), err


def test_classify_takes_an_enum_and_rerun_pays_nothing(
    koine_gateway: LocalGateway, client: SyncKoineClient
) -> None:
    texts = [f"day {i}" for i in range(4)] + ["day 0"]
    first = classify(texts, Mood, "How does this feel? {text}", client=client, progress=False)
    _check_classify_dtypes(first, ["happy", "sad"], False)
    assert first["answer_from"].tolist() == ["request"] * 4 + ["duplicate"]
    assert sent(koine_gateway, "/generate-object") == 4
    again = classify(texts, Mood, "How does this feel? {text}", client=client, progress=False)
    assert sent(koine_gateway, "/generate-object") == 4  # the re-run paid 0
    assert again["answer_from"].tolist() == ["ledger"] * 5
    assert again["label"].tolist() == first["label"].tolist()
    assert int(again["input_tokens"].sum()) == 0
    # Another verb over the same texts is another request (its body differs).
    extract(texts, Review, "How does this feel? {text}", client=client, progress=False)
    assert sent(koine_gateway, "/generate-object") == 8
    runs = history()
    assert runs["kind"].tolist()[:3] == ["extract", "classify", "classify"]


def test_retry_failed_resends_only_failed_classify_rows(
    koine_gateway: LocalGateway, client: SyncKoineClient
) -> None:
    df = classify(["ok", "bad [[fail]]"], LABELS, client=client, progress=False)
    assert sent(koine_gateway, "/generate-object") == 2
    again = retry_failed(df, progress=False)
    assert sent(koine_gateway, "/generate-object") == 3  # only the failed row
    _check_classify_dtypes(again, LABELS, False)
    assert again["answer_from"].tolist() == ["ledger", "request"]


# -- generate ----------------------------------------------------------------------------------


def _check_generate_dtypes(df: pd.DataFrame) -> None:
    assert list(df.columns) == [
        "text", "error", "input_tokens", "output_tokens", "attempts", "answer_from"
    ]  # fmt: skip
    assert str(df["text"].dtype) == "string"
    assert str(df["error"].dtype) == "string"
    assert str(df["attempts"].dtype) == "Int64"


def test_generate_dtypes_empty_failed_and_mixed(
    koine_gateway: LocalGateway, client: SyncKoineClient
) -> None:
    _check_generate_dtypes(generate([], "Say {text}", client=client, progress=False))
    failed = generate(["a [[fail]]"], "Say {text}", client=client, progress=False)
    _check_generate_dtypes(failed)
    assert failed["text"].isna().all() and failed["error"].notna().all()
    mixed = generate(["hello", "b [[fail]]", ""], "Say {text}", client=client, progress=False)
    _check_generate_dtypes(mixed)
    assert mixed["error"].isna().tolist() == [True, False, False]
    assert "hello" in mixed.loc[0, "text"]
    assert sent(koine_gateway, "/generate-text") == 3
    assert sent(koine_gateway, "/generate-object") == 0


def test_generate_sends_system_and_model_and_reuses_the_ledger(
    koine_gateway: LocalGateway, client: SyncKoineClient
) -> None:
    texts = ["one", "two"]
    df = generate(
        texts, "Echo {text}", system="Be brief.", model="haiku", client=client, progress=False
    )
    _check_generate_dtypes(df)
    bodies = [json.loads(r.body) for r in koine_gateway.requests if r.path == "/generate-text"]
    assert [b["system"] for b in bodies] == ["Be brief."] * 2
    assert {b["model"] for b in bodies} == {"haiku"}
    assert sorted(b["prompt"] for b in bodies) == ["Echo one", "Echo two"]
    again = generate(
        texts, "Echo {text}", system="Be brief.", model="haiku", client=client, progress=False
    )
    assert sent(koine_gateway, "/generate-text") == 2
    assert again["answer_from"].tolist() == ["ledger", "ledger"]
    assert again["text"].tolist() == df["text"].tolist()
    other = generate(texts, "Echo {text}", system="Be long.", client=client, progress=False)
    assert other["answer_from"].tolist() == ["request", "request"]


async def test_async_twins(koine_gateway: LocalGateway) -> None:
    async with create_koine(
        base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key
    ) as koine:
        labels = await aclassify(["a", "b"], LABELS, client=koine, progress=False)
        texts = await agenerate(["a", "b"], "Say {text}", client=koine, progress=False)
    _check_classify_dtypes(labels, LABELS, False)
    _check_generate_dtypes(texts)
    assert labels["error"].isna().all() and texts["error"].isna().all()


def test_the_verbs_are_exported_lazily() -> None:
    assert koine_jupyter.classify is classify
    assert koine_jupyter.generate is generate
    assert koine_jupyter.aclassify is aclassify
    assert koine_jupyter.agenerate is agenerate


def test_budgets_and_sample_estimates_serve_every_verb(
    koine_gateway: LocalGateway, client: SyncKoineClient
) -> None:
    texts = [f"row {i}" for i in range(10)]
    with pytest.raises(KoineError) as info:
        generate(texts, "Say {text}", sample=2, max_tokens=20, client=client, progress=False)
    assert info.value.code == "BUDGET_EXCEEDED"
    assert sent(koine_gateway, "/generate-text") == 2  # the sample only
    partial = classify(texts, LABELS, max_rows=3, client=client, progress=False)
    assert sent(koine_gateway, "/generate-object") == 3
    assert partial["error"].str.startswith("BUDGET_EXCEEDED").sum() == 7
