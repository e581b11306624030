"""The stream state machines (no I/O): what a stream hands over when it ends early, late or
oddly. The same rules over real HTTP are in tests/reliability/test_reliability_faults.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from koine_sdk import KoineError, StreamWarning
from koine_sdk._objects._schema_views import parser_for
from koine_sdk._sse import ServerSentEvent
from koine_sdk._streams import ObjectStreamState, TextStreamState


class Row(BaseModel):
    id: int
    name: str


class Table(BaseModel):
    title: str
    rows: list[Row]


def ev(name: str, data: Any) -> ServerSentEvent:
    return ServerSentEvent(name, data if isinstance(data, str) else json.dumps(data))


RESULT = ev("result", {"sessionId": "s-1", "usage": {"inputTokens": 1, "outputTokens": 2,
                                                      "totalTokens": 3}})  # fmt: skip
DONE_OK = ev("done", {"code": 0, "signal": None})


def text_state(*events: ServerSentEvent) -> TextStreamState:
    state = TextStreamState()
    for event in events:
        state.feed(event)
    return state


def object_state(*events: ServerSentEvent) -> tuple[ObjectStreamState[Any], list[Any]]:
    state: ObjectStreamState[Any] = ObjectStreamState(parser_for(Table))
    shown = [p for e in events if (p := state.feed(e)) is not None]
    return state, shown


def code_of(fn: Any) -> str:
    with pytest.raises(KoineError) as info:
        fn()
    return info.value.code


# -- done code 0 without result ----------------------------------------------------------------


def test_done_without_result_keeps_the_text_and_misses_usage_and_session() -> None:
    state = text_state(ev("session", {"sessionId": "p"}), ev("text", {"text": "hi"}), DONE_OK)
    state.end_of_body()
    state.check_result()  # the text is complete: nothing raises
    assert state.text == "hi"
    assert code_of(state.usage_or_raise) == "NO_USAGE"
    assert code_of(state.session_or_raise) == "NO_SESSION"


def test_done_with_a_failure_code_and_no_result_is_incomplete() -> None:
    state = text_state(ev("text", {"text": "hi"}), ev("done", {"code": 1, "signal": None}))
    assert code_of(state.check_result) == "STREAM_INCOMPLETE"


def test_result_then_error_keeps_the_usage_and_raises_the_error() -> None:
    error = ev("error", {"error": "no JSON", "code": "PARSE_ERROR"})
    state = text_state(RESULT, error, DONE_OK)
    assert code_of(state.check_result) == "PARSE_ERROR"
    assert state.usage_or_raise().total_tokens == 3  # the tokens were spent
    assert state.session_or_raise() == "s-1"


def test_no_done_is_incomplete_unless_an_error_event_came() -> None:
    assert code_of(text_state(ev("text", {"text": "a"}), RESULT).end_of_body) == (
        "STREAM_INCOMPLETE"
    )
    cli = ev("error", {"error": "CLI exited with code 1", "code": "CLI_EXIT_ERROR"})
    assert code_of(text_state(ev("text", {"text": "a"}), cli).end_of_body) == "CLI_EXIT_ERROR"


def test_object_stream_without_object_event() -> None:
    state, _ = object_state(RESULT, DONE_OK)
    state.check_result()
    assert code_of(state.final_object) == "NO_OBJECT"


# -- partial-object events ---------------------------------------------------------------------


def test_partial_object_with_parsed_null_yields_nothing() -> None:
    state, shown = object_state(
        ev("partial-object", {"partial": "", "parsed": None}),
        ev("partial-object", {"partial": "{", "parsed": {}}),
    )
    assert len(shown) == 1
    assert shown[0].title is None and state.raw_text == "{"


def test_unreadable_partial_object_is_skipped_with_a_warning() -> None:
    first = {"partial": '{"title": "T"', "parsed": {"title": "T"}}
    final = {"title": "T", "rows": [{"id": 1, "name": "a"}]}
    state, shown = object_state(
        ev("partial-object", first),
        ev("partial-object", '{"partial": unquoted broken'),
        ev("partial-object", "[1, 2]"),  # JSON, but not an object
        ev("object", {"object": final}),
        RESULT,
        DONE_OK,
    )
    assert [w.code for w in state.warnings] == ["PARTIAL_OBJECT_SKIPPED"] * 2
    assert all(isinstance(w, StreamWarning) for w in state.warnings)
    assert state.final_object() == Table.model_validate(final)
    assert shown[-1].rows[0].name == "a"  # the final object comes last when it differs


@pytest.mark.parametrize(
    "event",
    [
        ev("session", "{not json"),
        ev("session", {"sessionId": 3}),
        ev("result", {"sessionId": "s"}),
        ev("result", "[]"),
        ev("object", {"nothing": 1}),
        ev("object", "{broken"),
        ev("error", "<html>"),
        ev("done", "{"),
    ],
    ids=lambda e: f"{e.event}:{e.data}",
)
def test_other_malformed_object_stream_events_raise(event: ServerSentEvent) -> None:
    state: ObjectStreamState[Any] = ObjectStreamState(parser_for(Table))
    assert code_of(lambda: state.feed(event)) == "SSE_PARSE_ERROR"


@pytest.mark.parametrize("data", ['{"text": 3}', "{broken", '{"other": "x"}', "[]"])
def test_malformed_text_events_raise(data: str) -> None:
    assert code_of(lambda: TextStreamState().feed(ev("text", data))) == "SSE_PARSE_ERROR"


def test_validation_error_of_a_stream_carries_its_usage() -> None:
    bad = {"title": 5, "rows": "no"}
    state, _ = object_state(ev("object", {"object": bad}), RESULT, DONE_OK)
    with pytest.raises(KoineError) as info:
        state.final_object()
    assert info.value.code == "VALIDATION_ERROR"
    assert info.value.usage is not None and info.value.usage.total_tokens == 3


def test_a_dict_schema_shows_each_value_once() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    state: ObjectStreamState[Any] = ObjectStreamState(parser_for(schema))
    shown = [
        p
        for e in (
            ev("partial-object", {"partial": '{"a": 1', "parsed": {"a": 1}}),
            ev("object", {"object": {"a": 1}}),  # the same value: not shown again
            RESULT,
            DONE_OK,
        )
        if (p := state.feed(e)) is not None
    ]
    assert shown == [{"a": 1}] and state.final_object() == {"a": 1}
