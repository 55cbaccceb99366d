"""The files of the preference loop: responses and rankings (the model-free half's inputs).

Responses: a `responses` run (or its records.jsonl), or any JSONL/CSV with the columns
`prompt_id`, `prompt`, `response_id`, `response`. `group` is accepted for `prompt_id` (as
summarize runs write it); missing `response_id`s are lettered A, B, C... per prompt in file order,
and a missing `prompt_id` is derived from the prompt text (`prompt_key`).

Rankings store: JSONL (or CSV) rows, one per (prompt, annotator)::

    {"prompt_id": "p1", "annotator": "alice", "annotator_kind": "human", "order": "D > B = A > C"}

`order` is a string (best first, `=` ties) or tiers as lists (`[["D"], ["B", "A"], ["C"]]`);
`annotator_kind` is "human" (default) or "judge"; a missing annotator defaults to the file's
stem; optional `scores` ({response_id: number}, higher is better) keeps margins for reward
data. `synthloom judge` writes this format; people write it by hand or with the review app.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from synthloom.errors import UserError
from synthloom.outputs import write_jsonl_atomic
from synthloom.preference.rankings import Ranking
from synthloom.preference.types import RANKINGS_FILE, PromptResponses, prompt_key, response_letter
from synthloom.sources import read_inputs, read_table
from synthloom.validation import one_line

__all__ = [
    "RANKINGS_FILE",
    "PromptResponses",
    "format_order",
    "load_rankings",
    "load_rankings_placed",
    "load_responses",
    "ranking_from_row",
    "ranking_row",
    "write_rankings",
]


def _text(row: Mapping[str, Any], names: Sequence[str]) -> str | None:
    for name in names:
        value = row.get(name)
        if value is not None and str(value).strip():
            return str(value)
    return None


def load_responses(path: Path) -> dict[str, PromptResponses]:
    """Responses grouped by prompt id, in file order; errors name file:line."""
    groups: dict[str, PromptResponses] = {}
    for row in read_inputs(path):
        where = f"{row.path}:{row.line}"
        prompt = _text(row.data, ("prompt",))
        response = _text(row.data, ("response",))
        if prompt is None or response is None:
            have = ", ".join(sorted(row.data)) or "none"
            raise UserError(
                f"{where}: need non-empty 'prompt' and 'response' columns (columns here: {have})"
            )
        pid = _text(row.data, ("prompt_id", "group")) or prompt_key(prompt)
        group = groups.setdefault(pid, PromptResponses(pid, prompt, where=where))
        if group.prompt != prompt:
            raise UserError(
                f"{where}: prompt {pid!r} has a different prompt text than {group.where}"
            )
        rid = _text(row.data, ("response_id",)) or response_letter(len(group.responses))
        if rid in group.responses:
            raise UserError(f"{where}: prompt {pid!r} has response id {rid!r} twice")
        group.responses[rid] = response
        group.record_ids[rid] = row.record_id
    return groups


# -- rankings store -------------------------------------------------------------------------


def format_order(order: Sequence[Sequence[str]]) -> str:
    """[["D"], ["B", "A"], ["C"]] -> "D > B = A > C"."""
    return " > ".join(" = ".join(tier) for tier in order)


def ranking_row(ranking: Ranking) -> dict[str, Any]:
    """A rankings-store row for `ranking` (scores kept when it has them)."""
    row: dict[str, Any] = {
        "prompt_id": ranking.prompt_id,
        "annotator": ranking.annotator,
        "annotator_kind": ranking.annotator_kind,
        "order": format_order(ranking.order),
    }
    if ranking.scores is not None:
        row["scores"] = ranking.scores
    return row


def write_rankings(rankings: Iterable[Ranking], path: Path) -> Path:
    """Write a rankings file atomically (temp file + rename)."""
    return write_jsonl_atomic((ranking_row(r) for r in rankings), path)


def _one_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return one_line(exc)
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _tiers(order: Any) -> list[list[str]]:
    if not isinstance(order, list):
        raise ValueError(
            f"'order' must be a string like 'D > B = A > C' or a list of tiers, got {order!r}"
        )
    tiers: list[list[str]] = []
    for tier in order:
        if isinstance(tier, str):
            tiers.append([tier])
        elif isinstance(tier, list) and all(isinstance(x, str) for x in tier):
            tiers.append([x.strip() for x in tier])
        else:
            raise ValueError(f"each tier in 'order' must be a list of response ids, got {tier!r}")
    return tiers


def ranking_from_row(row: Mapping[str, Any], default_annotator: str) -> Ranking:
    """Parse one rankings-store row; raises ValueError with a one-line message."""
    pid = row.get("prompt_id")
    if pid is None or not str(pid).strip():
        raise ValueError("missing 'prompt_id'")
    if row.get("order") in (None, ""):
        raise ValueError("missing 'order'")
    annotator = str(row.get("annotator") or default_annotator)
    kind = row.get("annotator_kind") or "human"
    if kind not in ("human", "judge"):
        raise ValueError(f"'annotator_kind' must be 'human' or 'judge', got {kind!r}")
    order = row["order"]
    scores = row.get("scores") or None
    if scores is not None and not isinstance(scores, dict):
        raise ValueError("'scores' must be an object {response_id: number}")
    try:
        if isinstance(order, str):
            parsed = Ranking.from_string(
                order, prompt_id=str(pid), annotator=annotator, annotator_kind=kind
            )
            tiers = parsed.order
        else:
            tiers = _tiers(order)
        return Ranking(
            prompt_id=str(pid),
            annotator=annotator,
            annotator_kind=kind,
            order=tiers,
            scores=scores,
        )
    except (ValueError, TypeError) as exc:
        raise ValueError(_one_line(exc)) from None


def load_rankings(
    paths: Iterable[Path], responses: Mapping[str, PromptResponses] | None = None
) -> list[Ranking]:
    """Read rankings files; with `responses`, check prompt and response ids exist.

    Every problem is a UserError naming file:line (unknown prompt or response id, malformed
    order, one annotator ranking a prompt twice)."""
    return [ranking for ranking, _ in load_rankings_placed(paths, responses)]


def load_rankings_placed(
    paths: Iterable[Path], responses: Mapping[str, PromptResponses] | None = None
) -> list[tuple[Ranking, str]]:
    """`load_rankings`, each ranking with the file:line it came from."""
    out: list[tuple[Ranking, str]] = []
    seen: dict[tuple[str, str], str] = {}
    for path in paths:
        if path.is_dir():  # a judge run directory
            path = path / RANKINGS_FILE
        for line, row in read_table(path):
            where = f"{path}:{line}"
            try:
                ranking = ranking_from_row(row, path.stem)
            except ValueError as exc:
                raise UserError(f"{where}: {exc}") from None
            if responses is not None:
                known = responses.get(ranking.prompt_id)
                if known is None:
                    raise UserError(
                        f"{where}: unknown prompt_id {ranking.prompt_id!r}; it is not in the responses"
                    )
                unknown = [rid for rid in ranking.ids if rid not in known.responses]
                if unknown:
                    raise UserError(
                        f"{where}: unknown response id(s) {', '.join(unknown)} for prompt"
                        f" {ranking.prompt_id!r}; known: {', '.join(known.responses)}"
                    )
            key = (ranking.prompt_id, ranking.annotator)
            if key in seen:
                raise UserError(
                    f"{where}: annotator {ranking.annotator!r} already ranked prompt"
                    f" {ranking.prompt_id!r} at {seen[key]}"
                )
            seen[key] = where
            out.append((ranking, where))
    return out
