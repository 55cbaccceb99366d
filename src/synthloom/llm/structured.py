"""Structured output: the three ways to ask a server for JSON that matches a schema.

    json_schema  `response_format: {"type": "json_schema", "json_schema": {...}}` (OpenAI,
                 vLLM, SGLang, llama.cpp server, LM Studio)
    json_object  `response_format: {"type": "json_object", "schema": {...}}` (llama.cpp-based
                 servers that accept only "text" or "json_object")
    prompt       no response_format: the schema and "reply with only a JSON object" are
                 appended to the last user message (any chat server)

In every mode the answer is validated by the same pydantic model. The engine negotiates the
mode once per endpoint (`auto`), or uses the one the user chose (`--structured-output`).

A response schema is a pydantic model, declared one way: a class when it is fixed (qa's
`QAPair`), `schema(name, field=(type, default or Field(...)), ...)` when a task's params shape
it (a label among the user's labels: `one_of(labels)`; a length limit from a param). The
model's name is the JSON schema's title and the `json_schema` name sent.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, create_model

MODES = ("json_schema", "json_object", "prompt")
CHOICES = ("auto", *MODES)
PROMPT_INSTRUCTION = (
    "Reply with only a JSON object matching this JSON schema, without any other text:"
)

# Words in a server's error message that say it did not accept the requested format.
_FORMAT_WORDS = re.compile(
    r"response_format|json_schema|json_object|structured|'text'|schema|format|grammar", re.I
)
# Words that mark a request-validation message (vs. "internal error, try again").
_VALIDATION_WORDS = re.compile(
    r"validation|input should|invalid|not supported|unsupported|must be|required|unknown"
    r"|not allowed|not permitted|expected|unrecognized|does not support|extra (?:fields|inputs)",
    re.I,
)


def schema(name: str, **fields: Any) -> type[BaseModel]:
    """A response schema made from a task's params: `fields` as `pydantic.create_model`
    takes them, `field=(type, default or Field(...))`."""
    model: type[BaseModel] = create_model(name, **fields)
    return model


def one_of(values: Iterable[Any]) -> Any:
    """The type of a field holding one of `values` (a JSON schema `enum`, in this order)."""
    return Literal[tuple(values)]  # type: ignore[valid-type]


@functools.lru_cache(maxsize=512)
def json_schema(schema: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema, built once per class (callers must not modify it)."""
    return schema.model_json_schema()


def response_format(schema: type[BaseModel], mode: str) -> dict[str, Any] | None:
    if mode == "json_schema":
        return {
            "type": "json_schema",
            "json_schema": {"name": schema.__name__, "schema": json_schema(schema), "strict": True},
        }
    if mode == "json_object":
        return {"type": "json_object", "schema": json_schema(schema)}
    return None


def prompt_messages(
    messages: list[dict[str, Any]], schema: type[BaseModel]
) -> list[dict[str, Any]]:
    """`messages` with the JSON instruction and schema appended to the last user message."""
    instruction = f"{PROMPT_INSTRUCTION}\n{json.dumps(json_schema(schema), ensure_ascii=False)}"
    out = list(messages)
    for i in range(len(out) - 1, -1, -1):
        m = out[i]
        if m.get("role") == "user" and isinstance(m.get("content"), str):
            out[i] = {**m, "content": f"{m['content']}\n\n{instruction}"}
            return out
    out.append({"role": "user", "content": instruction})
    return out


def looks_like_validation(message: str) -> bool:
    """A request-validation message (the same for every retry), not a passing failure."""
    return bool(_VALIDATION_WORDS.search(message))


def mentions_format(message: str) -> bool:
    return bool(_FORMAT_WORDS.search(message))


def one_line(text: str, limit: int = 240) -> str:
    """A server message on one line (pydantic messages span several)."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
