"""Self-Instruct (Wang et al. 2022) heuristic filters and response parsers, model-free.

Each rule returns its name (the reason an item is dropped) or None (keep). Rule names are
the keys of `FilterCounter.removed`. Instances follow the published rules (cut off, empty
output, input == output, exact duplicates, at most 5 per task) plus one more: an output that
only repeats the task's instruction.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from synthloom.quality.rouge import SELF_INSTRUCT_THRESHOLD, NoveltyIndex

T = TypeVar("T")

# Instruction rules, in the order SelfInstructFilter applies them.
TOO_SHORT = "too_short"
TOO_LONG = "too_long"
BLOCKED_WORD = "blocked_word"
WRITE_A_PROGRAM = "write_a_program"
STARTS_WITH_PUNCTUATION = "starts_with_punctuation"
NON_ASCII = "non_ascii"
TOO_SIMILAR = "too_similar"

# Instance rules.
CUT_OFF = "cut_off"
EMPTY_OUTPUT = "empty_output"
INPUT_EQUALS_OUTPUT = "input_equals_output"
OUTPUT_EQUALS_INSTRUCTION = "output_equals_instruction"
DUPLICATE_INSTANCE = "duplicate_instance"
OVER_INSTANCE_LIMIT = "over_instance_limit"

MIN_WORDS = 3  # an instruction needs more than this many words
MAX_WORDS = 150
MAX_INSTANCES = 5

BLOCKED_WORDS = (
    "image", "images", "graph", "graphs", "picture", "pictures", "file", "files",
    "map", "maps", "draw", "plot", "go to",
)  # fmt: skip
_BLOCKED = re.compile(
    r"\b(?:" + "|".join(w.replace(" ", r"\s+") for w in BLOCKED_WORDS) + r")\b", re.IGNORECASE
)


@dataclass
class FilterCounter:
    """Tally of kept items and of removed items per rule."""

    kept: int = 0
    removed: Counter[str] = field(default_factory=Counter)

    def record(self, reason: str | None, n: int = 1) -> bool:
        """Count `n` items as kept (reason None) or removed by `reason`; True if kept."""
        if reason is None:
            self.kept += n
            return True
        if n:
            self.removed[reason] += n
        return False

    def as_dict(self) -> dict[str, int]:
        """{"kept": n, rule: n, ...}"""
        return {"kept": self.kept, **self.removed}


def normalize_whitespace(text: str) -> str:
    """Collapse runs of whitespace to one space and strip."""
    return " ".join(text.split())


# --- instruction rules ------------------------------------------------------------------


def check_length(instruction: str) -> str | None:
    """Drop instructions of <= 3 or > 150 whitespace-separated words."""
    n = len(instruction.split())
    if n <= MIN_WORDS:
        return TOO_SHORT
    if n > MAX_WORDS:
        return TOO_LONG
    return None


def check_blocked_words(instruction: str) -> str | None:
    """Drop instructions naming things a text model cannot do (whole words, any case)."""
    return BLOCKED_WORD if _BLOCKED.search(instruction) else None


def check_write_a_program(instruction: str) -> str | None:
    """Drop instructions starting with "Write a program" (any case)."""
    return WRITE_A_PROGRAM if instruction.lstrip().lower().startswith("write a program") else None


def check_starts_with_punctuation(instruction: str) -> str | None:
    """Drop instructions whose first character is ASCII punctuation."""
    text = instruction.lstrip()
    return STARTS_WITH_PUNCTUATION if text and text[0] in string.punctuation else None


def check_non_ascii(instruction: str) -> str | None:
    """Drop instructions starting with a non-ASCII character."""
    # As the published code does (`inst[0].isascii()`): DESIGN.md's "starting with ... or with
    # a non-ASCII character". Rejecting any non-ASCII character would also throw away good
    # instructions with typographic quotes or dashes (two of the 175 seeds, e.g. "joke’s").
    text = instruction.lstrip()
    return None if not text or text[0].isascii() else NON_ASCII


def check_similarity(
    instruction: str, index: NoveltyIndex, threshold: float = SELF_INSTRUCT_THRESHOLD
) -> str | None:
    """Drop an instruction whose ROUGE-L F1 with any text in `index` is above `threshold`."""
    return TOO_SIMILAR if index.max_similarity(instruction)[0] > threshold else None


INSTRUCTION_RULES = (
    check_length,
    check_blocked_words,
    check_write_a_program,
    check_starts_with_punctuation,
    check_non_ascii,
)
"""The text-only instruction rules, in order; the similarity rule runs after them."""


def check_instruction(
    instruction: str,
    index: NoveltyIndex | None = None,
    threshold: float = SELF_INSTRUCT_THRESHOLD,
) -> str | None:
    """First failing instruction rule, or None. Similarity is checked only if `index` is given."""
    for rule in INSTRUCTION_RULES:
        if reason := rule(instruction):
            return reason
    return None if index is None else check_similarity(instruction, index, threshold)


class SelfInstructFilter:
    """Applies the instruction rules to a stream of candidates and tallies removals.

    Kept candidates join the novelty index, so each candidate is compared with the seeds
    (see `add_existing`) and every candidate kept before it.
    """

    def __init__(self, threshold: float = SELF_INSTRUCT_THRESHOLD) -> None:
        self.threshold = threshold
        self.index = NoveltyIndex()
        self.counter = FilterCounter()
        self.kept: list[str] = []

    @property
    def removed(self) -> dict[str, int]:
        """Removed candidates per rule."""
        return dict(self.counter.removed)

    def add_existing(self, instructions: Iterable[str]) -> None:
        """Register earlier instructions (seeds, earlier rounds) for the similarity rule."""
        self.index.extend(instructions)

    def offer(self, instruction: str) -> str | None:
        """Check one candidate (whitespace-normalized); keep it if it passes. Returns the reason."""
        text = normalize_whitespace(instruction)
        reason = check_instruction(text, self.index, self.threshold)
        if self.counter.record(reason):
            self.kept.append(text)
            self.index.add(text)
        return reason

    def filter(self, candidates: Iterable[str]) -> list[str]:
        """Offer candidates in order; return the ones kept (normalized) by this call."""
        start = len(self.kept)
        for candidate in candidates:
            self.offer(candidate)
        return self.kept[start:]


# --- instance rules ---------------------------------------------------------------------


def instance_key(input_text: str, output_text: str) -> tuple[str, str]:
    """What makes two instances the same: input and output, whitespace collapsed, any case."""
    return normalize_whitespace(input_text).casefold(), normalize_whitespace(output_text).casefold()


def check_instance(
    input_text: str,
    output_text: str,
    finish_reason: str | None = None,
    instruction: str | None = None,
) -> str | None:
    """First failing instance rule, or None.

    Pass `finish_reason` only for the last instance parsed from a response: it is the one
    the length limit may have cut off. Input and output are compared with whitespace
    collapsed (case counts: "hello" -> "Hello" is a real capitalisation task); an output that
    repeats the task's `instruction` (whitespace and case aside) teaches nothing.
    """
    if finish_reason == "length":
        return CUT_OFF
    if not output_text.strip():
        return EMPTY_OUTPUT
    output = normalize_whitespace(output_text)
    if normalize_whitespace(input_text) == output:
        return INPUT_EQUALS_OUTPUT
    if (
        instruction is not None
        and normalize_whitespace(instruction).casefold() == output.casefold()
    ):
        return OUTPUT_EQUALS_INSTRUCTION
    return None


def cap_instances(instances: Sequence[T], limit: int = MAX_INSTANCES) -> tuple[list[T], int]:
    """Keep the first `limit` instances; return them and how many were cut."""
    return list(instances[:limit]), max(0, len(instances) - limit)


@dataclass(frozen=True)
class Rejected:
    """An instance a rule removed: its position in the response, the rule, the pair."""

    index: int
    reason: str
    input: str
    output: str


def screen_instances(
    instances: Sequence[tuple[str, str]],
    finish_reason: str | None = None,
    limit: int = MAX_INSTANCES,
    instruction: str | None = None,
) -> tuple[list[tuple[str, str]], list[Rejected]]:
    """Apply the instance rules to one response's (input, output) pairs, then drop exact
    duplicates of an earlier kept pair (`instance_key`), then the cap. Returns the kept
    pairs and every removed one with its rule, in response order.

    `finish_reason` is the response's; "length" drops the last instance as cut off.
    `instruction` is the task's, for the output == instruction rule.
    """
    passed: list[tuple[int, str, str]] = []
    rejected: list[Rejected] = []
    seen: set[tuple[str, str]] = set()
    for i, (inp, out) in enumerate(instances):
        last = i == len(instances) - 1
        reason = check_instance(inp, out, finish_reason if last else None, instruction)
        if reason is None:
            key = instance_key(inp, out)
            reason = DUPLICATE_INSTANCE if key in seen else None
            seen.add(key)
        if reason is None:
            passed.append((i, inp, out))
        else:
            rejected.append(Rejected(i, reason, inp, out))
    kept, cut = passed[:limit], passed[limit:]
    rejected += [Rejected(i, OVER_INSTANCE_LIMIT, inp, out) for i, inp, out in cut]
    rejected.sort(key=lambda r: r.index)
    return [(inp, out) for _, inp, out in kept], rejected


def filter_instances(
    instances: Sequence[tuple[str, str]],
    finish_reason: str | None = None,
    limit: int = MAX_INSTANCES,
    counter: FilterCounter | None = None,
    instruction: str | None = None,
) -> list[tuple[str, str]]:
    """`screen_instances`, tallying kept and removed pairs in `counter`; returns the kept."""
    counter = counter if counter is not None else FilterCounter()
    kept, rejected = screen_instances(instances, finish_reason, limit, instruction)
    for r in rejected:
        counter.record(r.reason)
    counter.record(None, len(kept))
    return kept


# --- classification vs generation -------------------------------------------------------

_CLASSIFICATION_CUES = re.compile(
    r"\b(?:classify|classification|categori[sz]e|categor(?:y|ies)|sentiment"
    r"|(?:tell|decide|determine|detect|identify|judge|check|predict)(?: me)? (?:if|whether)"
    r"|yes or no|true or false|or not|multiple[- ]choice|one of the following|candidates"
    r'|(?:output|answer|respond with|reply with) "?[\w-]+"? or "?[\w-]+"?)\b',
    re.IGNORECASE,
)


def is_classification(instruction: str, declared: bool | None = None) -> bool:
    """Whether a task is classification (generate the label first, then the input).

    A declared answer (seed metadata, or a model's yes/no) wins. Otherwise a keyword
    heuristic stands in for Self-Instruct's model-based check.
    """
    if declared is not None:
        return declared
    return bool(_CLASSIFICATION_CUES.search(instruction))


# --- parsing model outputs --------------------------------------------------------------

# "9. ", "9) ", "Task 9: ", "Instruction 9: ", optionally followed by "Instruction:" (or the
# Alpaca "Input:"/"Output:" fields, whose items are dropped).
_ITEM = re.compile(
    r"^[ \t]*(?:(?:task|instruction)[ \t]*)?\d+[ \t]*[.:)](?=\s|$)[ \t]*"
    r"(?:(instruction|input|output)[ \t]*:)?",
    re.IGNORECASE | re.MULTILINE,
)
_SEPARATOR = re.compile(r"^[ \t]*#{3,}[ \t]*$", re.MULTILINE)
_NUMBER_AGAIN = re.compile(r"\A(?:\d+[ \t]*[.)][ \t]+)+")  # "9. 3. Do x" -> "Do x"


def parse_instruction_list(text: str, cut_off: bool = False) -> list[str]:
    """Instructions from a numbered list, numbering removed and whitespace collapsed.

    Accepts "9. ...", "Task 9: ...", "9. Instruction: ..." (Alpaca's "9. Input:"/"9. Output:"
    items are skipped, "###" lines ignored). Unnumbered text before the first number is the
    first instruction (the prompt ends with "9." and the model continues), unless it ends
    with ":" like a preamble. `cut_off=True` (finish_reason "length") drops the last item.
    """
    text = _SEPARATOR.sub("", text)
    matches = list(_ITEM.finditer(text))
    head = normalize_whitespace(text[: matches[0].start()] if matches else text)
    items = [head] if head and not head.endswith(":") else []
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        label = (match.group(1) or "instruction").lower()
        body = _NUMBER_AGAIN.sub("", normalize_whitespace(text[match.end() : end]))
        if label == "instruction" and body:
            items.append(body)
    return items[:-1] if cut_off else items


_EXAMPLE_HEADER = re.compile(r"^[ \t]*Example[ \t]*\d*[ \t]*[.:]?[ \t]*$", re.I | re.M)
_INPUT_LABEL = re.compile(r"^[ \t]*Input[ \t]*\d*[ \t]*:", re.I | re.M)
_OUTPUT_LABEL = re.compile(r"^[ \t]*Output[ \t]*\d*[ \t]*:", re.I | re.M)
_CLASS_LABEL = re.compile(r"^[ \t]*Class[ \t]+label[ \t]*\d*[ \t]*:", re.I | re.M)
_LEADING_INPUT_LABEL = re.compile(r"\AInput[ \t]*\d*[ \t]*:", re.I)


def parse_instances(text: str, output_first: bool) -> list[tuple[str, str]]:
    """(input, output) pairs from an instance-generation response.

    Input-first: blocks of "Input: ...\\nOutput: ..." ("Example N" header lines between
    them are optional); text before "Output:" counts as input even without an "Input:"
    label (e.g. "Paragraph: ..."), and an output with no input gives input "".
    Output-first (classification): "Class label: X" followed by the input on the next
    lines; the output is the label. Labels are matched only at the start of a line.
    """
    pairs: list[tuple[str, str]] = []
    for block in _EXAMPLE_HEADER.split(text):
        parse = _parse_label_first if output_first else _parse_input_first
        pairs.extend(parse(block))
    return pairs


def _strip_input_label(text: str) -> str:
    return _LEADING_INPUT_LABEL.sub("", text.strip()).strip()


def _parse_label_first(block: str) -> list[tuple[str, str]]:
    chunks = _CLASS_LABEL.split(block)[1:]  # text before the first label is not an instance
    pairs = []
    for chunk in chunks:
        label, _, rest = chunk.strip().partition("\n")
        pairs.append((_strip_input_label(rest), label.strip()))
    return pairs


def _parse_input_first(block: str) -> list[tuple[str, str]]:
    markers = sorted(
        [(m.start(), m.end(), "input") for m in _INPUT_LABEL.finditer(block)]
        + [(m.start(), m.end(), "output") for m in _OUTPUT_LABEL.finditer(block)]
    )
    pairs = []
    input_start: int | None = 0  # unlabeled text at the block start is input
    input_text = ""
    output_start: int | None = None
    for start, end, kind in markers:
        if output_start is not None:  # the open output ends here
            pairs.append((input_text, block[output_start:start].strip()))
            output_start = None
        if kind == "input":
            input_start = end
        else:
            input_text = block[input_start:start].strip() if input_start is not None else ""
            input_start, output_start = None, end
    if output_start is not None:
        pairs.append((input_text, block[output_start:].strip()))
    return pairs
