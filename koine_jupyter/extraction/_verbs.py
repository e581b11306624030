"""How each verb becomes a request, and its answer columns: one small spec per verb.

A :class:`Verb` says which endpoint it calls, what its body adds to the prompt (a schema, or
nothing), the result's columns (and their dtypes), how a result becomes the row's values, what is
written to the ledger, and how a recorded answer becomes the row's values again. Everything else
(ledger, resume, replicas, budgets, Dask, progress) is the same machinery for every verb: a
fourth verb is one more spec here and one public function.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from typing import Any, Literal, cast

from pydantic import BaseModel, Field, ValidationError, create_model

from koine_sdk import Endpoint
from koine_sdk.ledger import LedgerRecord

from ._clients import ClientLike, generate_object, generate_text, wire_schema
from ._columns import Column, flatten, schema_columns
from ._options import Options, invalid

__all__ = ["VERBS", "Classify", "Extract", "Generate", "Verb", "labels_of", "needs_text_slot"]

_SLOT = re.compile(r"\{text\}")


def needs_text_slot(verb: str, prompt: Any) -> str:
    """``prompt`` checked for a verb whose prompt must place the text (``{text}``)."""
    if not isinstance(prompt, str):
        raise invalid(f"prompt must be a string (got {type(prompt).__name__})")
    if not _SLOT.search(prompt):
        raise invalid(
            f"{verb}() needs a prompt with {{text}} where each row's text goes, e.g. "
            f"'Summarise in one sentence: {{text}}' (got {prompt!r})"
        )
    return prompt


class Verb:
    """The per-verb part of a run (see the module's docstring)."""

    name: str = "extract"
    endpoint: Endpoint = Endpoint.GENERATE_OBJECT
    label: str = ""  # what the ledger's run parameters call the output (``schema``)

    def columns(self) -> list[Column]:
        raise NotImplementedError

    def wire_schema(self) -> dict[str, Any] | None:
        """The JSON Schema the body sends (``None``: none)."""
        return None

    def check(self, options: Options) -> None:
        """Options this verb cannot use (``INVALID_ARGUMENT``)."""

    async def ask(self, client: ClientLike, prompt: str, options: Options) -> Any:
        raise NotImplementedError

    def values(self, result: Any) -> tuple[Any, ...]:
        raise NotImplementedError

    def answer(self, result: Any) -> tuple[str | None, str | None]:
        """``(answer, raw_text)`` as written to the ledger."""
        raise NotImplementedError

    def replay(self, record: LedgerRecord) -> tuple[Any, ...] | None:
        """The values of a recorded answer (``None``: unusable, ask again)."""
        raise NotImplementedError


class _ObjectVerb(Verb):
    """A verb answered by ``/generate-object`` with a pydantic model."""

    def __init__(self, schema: type[BaseModel]) -> None:
        self.schema = schema
        self._columns, _ = schema_columns(schema)
        self.label = schema.__name__

    def columns(self) -> list[Column]:
        return list(self._columns)

    def wire_schema(self) -> dict[str, Any] | None:
        return wire_schema(self.schema)

    async def ask(self, client: ClientLike, prompt: str, options: Options) -> Any:
        return await generate_object(
            client,
            prompt=prompt,
            schema=self.schema,
            system=options.system,
            model=options.model,
            allowed_tools=options.allowed_tools,
            timeout=options.timeout,
            repairs=options.repairs,
            # cache=False is the caller's explicit choice: no answer from any ledger, the
            # client's included
            replay=None if options.cache else "off",
        )

    def values(self, result: Any) -> tuple[Any, ...]:
        return flatten(result.object, self._columns)

    def answer(self, result: Any) -> tuple[str | None, str | None]:
        obj = result.object
        text = obj.model_dump_json(by_alias=True) if isinstance(obj, BaseModel) else None
        return text, getattr(result, "raw_text", None)

    def replay(self, record: LedgerRecord) -> tuple[Any, ...] | None:
        # Validated again from what the gateway sent (``raw_text``, the model's JSON as it was
        # paid for), so every schema (aliases, excluded or computed fields, transforming
        # validators) resumes with the values of the first run; ``answer`` is the fallback.
        for text in (record.raw_text, record.answer):
            if text is None:
                continue
            try:
                return flatten(self.schema.model_validate_json(text), self._columns)
            except ValidationError:
                continue  # recorded under an older version of the model: try the next
        return None


class Extract(_ObjectVerb):
    """``extract``: the fields of a pydantic model, one column each."""

    name = "extract"


def labels_of(given: Any) -> tuple[str, ...]:
    """The labels of ``classify``: a list of distinct non-empty strings, or an ``Enum`` class
    (its values when they are all strings, else its names)."""
    labels: Any = given
    if isinstance(labels, type) and issubclass(labels, enum.Enum):
        members: list[enum.Enum] = list(labels)
        if members and all(isinstance(m.value, str) for m in members):
            out = [cast(str, m.value) for m in members]
        else:
            out = [m.name for m in members]
    elif isinstance(labels, str | bytes) or not isinstance(labels, Sequence):
        raise invalid(
            "labels must be a list of strings or an Enum class, e.g. ['positive', 'negative'] "
            f"(got {type(given).__name__})"
        )
    else:
        out = list(cast(Sequence[Any], given))
        bad = [v for v in out if not isinstance(v, str)]
        if bad:
            raise invalid(f"labels must be strings (got {bad[0]!r} of {type(bad[0]).__name__})")
    if not out:
        raise invalid("labels is empty: give at least one label, e.g. ['yes', 'no']")
    blank = [v for v in out if not v.strip()]
    if blank:
        raise invalid("labels must not be empty strings")
    seen: set[str] = set()
    dupes = sorted({v for v in out if v in seen or seen.add(v)})
    if dupes:
        raise invalid(f"labels must be distinct; repeated: {dupes}")
    return tuple(out)


def default_classify_prompt(labels: Sequence[str]) -> str:
    shown = ", ".join(repr(v) for v in labels)
    return f"Classify the following text with exactly one of these labels: {shown}.\n\n{{text}}"


class Classify(_ObjectVerb):
    """``classify``: one label per row (a ``Categorical`` column), and a short reason on
    request."""

    name = "classify"

    def __init__(self, labels: tuple[str, ...], reason: bool) -> None:
        fields: dict[str, Any] = {}
        if reason:
            fields["reason"] = (str, Field(description="One short sentence: why this label."))
        fields["label"] = (Literal[labels], Field(description="One of the allowed labels."))
        schema = create_model("Classification", **fields)
        super().__init__(schema)
        self.labels = labels
        self.reason = reason
        self.label = "Classification"
        self._columns = [Column("label", ("label",), "category", labels)] + (
            [Column("reason", ("reason",), "str")] if reason else []
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # The schema is made at run time: a worker rebuilds it from the labels.
        return (Classify, (self.labels, self.reason))


class Generate(Verb):
    """``generate``: free text per row from ``/generate-text`` (a ``string`` column)."""

    name = "generate"
    endpoint = Endpoint.GENERATE_TEXT
    label = "text"
    _COLUMN = Column("text", ("text",), "str")

    def columns(self) -> list[Column]:
        return [self._COLUMN]

    def check(self, options: Options) -> None:
        if options.repairs:
            raise invalid("repairs= is for answers checked against a schema; generate() has none")

    async def ask(self, client: ClientLike, prompt: str, options: Options) -> Any:
        return await generate_text(
            client,
            prompt=prompt,
            system=options.system,
            model=options.model,
            allowed_tools=options.allowed_tools,
            timeout=options.timeout,
            replay=None if options.cache else "off",
        )

    def values(self, result: Any) -> tuple[Any, ...]:
        return (str(result.text),)

    def answer(self, result: Any) -> tuple[str | None, str | None]:
        return str(result.text), None

    def replay(self, record: LedgerRecord) -> tuple[Any, ...] | None:
        return None if record.answer is None else (record.answer,)


VERBS: tuple[type[Verb], ...] = (Extract, Classify, Generate)
"""Every verb spec: a run's ``kind`` in the ledger is one of their names."""
