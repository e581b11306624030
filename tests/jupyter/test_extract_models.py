"""Each answer is keyed by the model that answered it: gateways (replicas) whose clients ask for
different default models never share answers, and ``history()`` shows each answer's model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from koine_jupyter.extraction import generate, history
from koine_sdk import create_koine_sync
from koine_sdk.testing import LocalGateway

Factory = Callable[..., LocalGateway]


def _sent(gw: LocalGateway) -> list[dict[str, object]]:
    return [r.json for r in gw.requests if r.path == "/generate-text" and r.json]


def test_an_answer_is_reused_only_for_the_model_that_gave_it(
    koine_gateway_factory: Factory, tmp_path: Path
) -> None:
    ledger = str(tmp_path / "models.sqlite3")
    a, b = koine_gateway_factory(), koine_gateway_factory()
    texts = [f"question {i}" for i in range(6)]
    with (
        create_koine_sync(base_url=a.base_url, auth_key=a.auth_key, model="haiku") as haiku,
        create_koine_sync(base_url=b.base_url, auth_key=b.auth_key, model="sonnet") as sonnet,
    ):
        first = generate(texts, "Say {text}", client=haiku, ledger=ledger, progress=False)
        assert len(_sent(a)) == 6
        other = generate(texts, "Say {text}", client=sonnet, ledger=ledger, progress=False)
        assert len(_sent(b)) == 6  # another model: paid again
        assert (other["answer_from"] == "request").all()
        again = generate(texts, "Say {text}", client=haiku, ledger=ledger, progress=False)
        assert len(_sent(a)) == 6  # the same model: nothing paid
        assert (again["answer_from"] == "ledger").all()
        assert again["text"].tolist() == first["text"].tolist()
    runs = history(ledger=ledger)
    assert list(runs["model"]) == ["haiku", "sonnet", "haiku"]  # newest first
    by_run = {
        run_id: set(history(str(run_id), ledger=ledger)["model"].astype(object))
        for run_id in runs.index
    }
    assert by_run[str(runs.index[1])] == {"sonnet"}
    assert by_run[str(runs.index[2])] == {"haiku"}


def test_a_mixed_run_records_each_answer_under_its_replicas_model(
    koine_gateway_factory: Factory, tmp_path: Path
) -> None:
    ledger = str(tmp_path / "mixed.sqlite3")
    a, b = koine_gateway_factory(), koine_gateway_factory()
    texts = [f"mixed {i} [[delay=0.02]]" for i in range(30)]
    with (
        create_koine_sync(base_url=a.base_url, auth_key=a.auth_key, model="haiku") as haiku,
        create_koine_sync(base_url=b.base_url, auth_key=b.auth_key, model="sonnet") as sonnet,
    ):
        df = generate(texts, "Say {text}", client=[haiku, sonnet], ledger=ledger, progress=False)
        assert df["error"].isna().all()
        asked = {str(body["prompt"]): body.get("model") for body in [*_sent(a), *_sent(b)]}
        assert set(asked.values()) == {"haiku", "sonnet"}  # both gateways answered rows
        rows = history("last", ledger=ledger)
        prompts, models = rows["prompt"].astype(object), rows["model"].astype(object)
        recorded = dict(zip(prompts, models, strict=True))
        assert recorded == asked  # each answer under the model its gateway was asked for
        assert history(ledger=ledger)["model"].iloc[0] == "haiku | sonnet"
        # A run against one of the two models reuses only that model's answers.
        paid = len(_sent(b))
        again = generate(texts, "Say {text}", client=sonnet, ledger=ledger, progress=False)
        from_ledger = int((again["answer_from"] == "ledger").sum())
        assert from_ledger == sum(1 for m in asked.values() if m == "sonnet")
        assert len(_sent(b)) - paid == len(texts) - from_ledger


def test_two_mixed_runs_at_once_pay_each_text_once(
    koine_gateway_factory: Factory, tmp_path: Path
) -> None:
    """Runs at once over the same two replicas (two models): a waiting run finds the answer
    under whichever model answered it (claims are per text, answers per model)."""
    import threading

    import pandas as pd

    ledger = str(tmp_path / "mixed-twice.sqlite3")
    a, b = koine_gateway_factory(), koine_gateway_factory()
    texts = [f"twice {i} [[delay=0.1]]" for i in range(20)]
    frames: list[pd.DataFrame] = []
    with (
        create_koine_sync(base_url=a.base_url, auth_key=a.auth_key, model="haiku") as haiku,
        create_koine_sync(base_url=b.base_url, auth_key=b.auth_key, model="sonnet") as sonnet,
    ):
        barrier = threading.Barrier(2)

        def run() -> None:
            barrier.wait()
            frames.append(
                generate(texts, "Say {text}", client=[haiku, sonnet], ledger=ledger, progress=False)
            )

        threads = [threading.Thread(target=run) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        paid = len(_sent(a)) + len(_sent(b)) - a.rejected - b.rejected
    assert len(frames) == 2 and all(df["error"].isna().all() for df in frames)
    assert paid == len(texts)
