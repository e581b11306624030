"""generate_object(..., repairs=N): a schema mismatch resumes the same session with the
validation errors, up to N times; attempts and usage add up; an exhausted loop raises
VALIDATION_ERROR carrying them. The local gateway's ``[[invalid-object=N]]`` makes the first N
answers of a conversation invalid."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from koine_sdk import KoineClient, KoineError, KoineUsage, create_koine_sync
from koine_sdk.testing import Fault


class City(BaseModel):
    name: str
    population: int


async def test_a_repair_fixes_the_answer(koine: KoineClient, koine_gateway: Any) -> None:
    result = await koine.generate_object(
        prompt="a city [[invalid-object=1]]", schema=City, repairs=2
    )
    assert isinstance(result.object, City)
    assert result.attempts == 2
    first, second = [r.json for r in koine_gateway.requests]
    assert "sessionId" not in first
    # the repair resumes the first answer's session, with pydantic's errors in the prompt
    assert second["sessionId"] == result.session_id
    assert second["schema"] == first["schema"]
    assert "name: Input should be a valid string (got 12345)" in second["prompt"]
    assert "corrected JSON" in second["prompt"]
    # usage sums both answers (each as the gateway reported it): an invalid one, a valid one
    single = await koine.generate_object(prompt="a city", schema=City)
    assert single.attempts == 1
    koine_gateway.enqueue(Fault.invalid_object())
    with pytest.raises(KoineError) as info:
        await koine.generate_object(prompt="a city", schema=City)
    invalid = info.value.usage
    assert invalid is not None
    assert result.usage.output_tokens == invalid.output_tokens + single.usage.output_tokens
    assert result.usage.input_tokens > single.usage.input_tokens + invalid.input_tokens
    assert result.usage.total_tokens == result.usage.input_tokens + result.usage.output_tokens


async def test_valid_first_answer_makes_one_request(koine: KoineClient, koine_gateway: Any) -> None:
    result = await koine.generate_object(prompt="a city", schema=City, repairs=3)
    assert result.attempts == 1 and len(koine_gateway.requests) == 1


async def test_exhausted_repairs_raise_with_attempts_and_usage(
    koine: KoineClient, koine_gateway: Any
) -> None:
    with pytest.raises(KoineError) as info:
        await koine.generate_object(prompt="a city [[invalid-object=9]]", schema=City, repairs=2)
    err = info.value
    assert err.code == "VALIDATION_ERROR"
    assert err.attempts == 3 and len(koine_gateway.requests) == 3
    assert isinstance(err.usage, KoineUsage) and err.usage.total_tokens > 0
    assert err.raw_text and '"name":12345' in err.raw_text  # the last answer
    assert koine_gateway.auth_key not in str(err) + repr(err)


async def test_no_repairs_by_default_but_usage_is_kept(
    koine: KoineClient, koine_gateway: Any
) -> None:
    koine_gateway.enqueue(Fault.invalid_object())
    with pytest.raises(KoineError) as info:
        await koine.generate_object(prompt="a city", schema=City)
    assert info.value.code == "VALIDATION_ERROR"
    assert info.value.attempts == 1 and info.value.usage is not None
    assert len(koine_gateway.requests) == 1


async def test_a_failing_repair_request_keeps_the_usage_paid(
    koine: KoineClient, koine_gateway: Any
) -> None:
    koine_gateway.enqueue(Fault.invalid_object(), Fault.cli_error())
    with pytest.raises(KoineError) as info:
        await koine.generate_object(prompt="a city", schema=City, repairs=1)
    err = info.value
    assert err.code == "CLI_EXIT_ERROR"
    assert err.attempts == 1 and err.usage is not None and err.usage.total_tokens > 0


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2", None])
async def test_invalid_repairs(koine: KoineClient, koine_gateway: Any, bad: Any) -> None:
    with pytest.raises(KoineError) as info:
        await koine.generate_object(prompt="x", schema=City, repairs=bad)
    assert info.value.code == "INVALID_ARGUMENT"
    assert koine_gateway.requests == []


def test_sync_client_repairs(koine_gateway: Any) -> None:
    with create_koine_sync(
        base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key
    ) as koine:
        result = koine.generate_object(prompt="[[invalid-object=2]] a city", schema=City, repairs=2)
        assert result.attempts == 3 and isinstance(result.object, City)
        with pytest.raises(KoineError) as info:
            koine.generate_object(prompt="x", schema=City, repairs=-1)
        assert info.value.code == "INVALID_ARGUMENT"


def test_the_errors_pickle_with_usage_and_attempts() -> None:
    import pickle

    usage = KoineUsage(input_tokens=1, output_tokens=2, total_tokens=3)
    err = KoineError("bad", "VALIDATION_ERROR", "{}", usage=usage, attempts=2)
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.usage, copy.attempts, copy.code, copy.raw_text) == (
        usage,
        2,
        "VALIDATION_ERROR",
        "{}",
    )
    assert "usage=" in repr(err) and "usage" not in str(err)
