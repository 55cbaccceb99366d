import json
from pathlib import Path

import jinja2
import pytest

from synthloom import templates
from synthloom.quality.evol_rules import (
    ANSWER_REPEATS_INSTRUCTION,
    BREADTH,
    COPIES_TEMPLATE,
    IN_DEPTH_OPERATIONS,
    NO_INFORMATION_GAIN,
    NOT_AN_INSTRUCTION,
    ONLY_STOP_WORDS,
    OPERATIONS,
    REFUSAL,
    REPEATED_TEXT,
    check_answer_repeats_instruction,
    check_evolution,
    check_information_gain,
    check_not_an_instruction,
    check_only_stop_words,
    check_refusal,
    check_repetition,
    check_template_copy,
    reads_as_request,
)
from synthloom.quality.self_instruct_filters import FilterCounter
from synthloom.tasks.self_instruct import DEFAULT_SEEDS

ORIGINAL = "Give three tips for staying healthy."
DEEPER = (
    "Give three evidence-based tips for staying healthy while working night shifts, "
    "and explain for each how it affects sleep quality."
)
ANSWER = "Drink water, sleep eight hours and walk every day."


def words(n: int, with_sorry: bool) -> str:
    body = ["health"] * (n - 1 if with_sorry else n)
    return " ".join((["Sorry,"] if with_sorry else []) + body)


# --- operations and templates ----------------------------------------------------------


def test_operations() -> None:
    assert IN_DEPTH_OPERATIONS == (
        "add_constraints",
        "deepen",
        "concretize",
        "increase_reasoning_steps",
        "complicate_input",
    )
    assert OPERATIONS == (*IN_DEPTH_OPERATIONS, BREADTH)
    # every in-depth operation has its method in the evolving prompt
    methods = templates.load("evol_rewrite").constants["methods"]
    assert set(methods) == set(IN_DEPTH_OPERATIONS)


def build_prompt(operation: str, instruction: str) -> str:
    """The evolving prompt for `operation` applied to `instruction` (one user message)."""
    (message,) = templates.load("evol_rewrite").messages(
        operation=operation, instruction=instruction
    )
    assert message["role"] == "user"
    return message["content"]


@pytest.mark.parametrize("operation", IN_DEPTH_OPERATIONS)
def test_in_depth_templates(operation: str) -> None:
    prompt = build_prompt(operation, "  Sum {a} and {b}.  ")
    assert "more complex version" in prompt
    assert "10 to 20 words" in prompt
    assert "#Given Prompt#:\nSum {a} and {b}.\n" in prompt  # braces in the instruction survive
    assert prompt.endswith("#Rewritten Prompt#:")


def test_in_depth_templates_differ_by_method() -> None:
    prompts = {build_prompt(op, ORIGINAL) for op in IN_DEPTH_OPERATIONS}
    assert len(prompts) == len(IN_DEPTH_OPERATIONS)


def test_breadth_template() -> None:
    prompt = build_prompt(BREADTH, ORIGINAL)
    assert "brand-new prompt" in prompt
    assert "same domain" in prompt and "rarer" in prompt
    assert f"#Given Prompt#:\n{ORIGINAL}\n" in prompt
    assert prompt.endswith("#Created Prompt#:")
    assert "#Rewritten Prompt#" not in prompt


def test_an_unknown_operation_is_refused() -> None:
    with pytest.raises(jinja2.UndefinedError):
        build_prompt("shorten", ORIGINAL)


# --- elimination rules -----------------------------------------------------------------


HOME = "Give three short tips for staying healthy and happy while working at home."


@pytest.mark.parametrize(
    ("original", "evolved", "expected"),
    [
        (ORIGINAL, ORIGINAL, NO_INFORMATION_GAIN),
        (ORIGINAL, "  give THREE tips\nfor staying healthy. ", NO_INFORMATION_GAIN),
        (ORIGINAL, "Give three tips for staying healthy!", NO_INFORMATION_GAIN),  # ROUGE-L 1
        # one word of 13 swapped: ROUGE-L 12/13 >= 0.9
        (HOME, HOME.replace(" at ", " from "), NO_INFORMATION_GAIN),
        (ORIGINAL, DEEPER, None),
        (HOME, DEEPER, None),
    ],
)
def test_information_gain(original: str, evolved: str, expected: str | None) -> None:
    assert check_information_gain(original, evolved) == expected


def test_information_gain_without_rouge() -> None:
    assert check_information_gain(ORIGINAL, ORIGINAL + "!", threshold=None) is None
    assert check_information_gain(ORIGINAL, ORIGINAL.upper(), threshold=None) == NO_INFORMATION_GAIN


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("I'm sorry, I cannot help with that.", REFUSAL),
        ("SORRY. That is not possible.", REFUSAL),
        (words(79, with_sorry=True), REFUSAL),
        (words(80, with_sorry=True), None),
        (words(100, with_sorry=True), None),
        (ANSWER, None),
    ],
)
def test_refusal(response: str, expected: str | None) -> None:
    assert check_refusal(response) == expected


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("...", ONLY_STOP_WORDS),
        ("", ONLY_STOP_WORDS),
        ("It is what it is!", ONLY_STOP_WORDS),
        ("I don't.", ONLY_STOP_WORDS),
        ("I don't know.", None),
        ("Paris is the capital of France.", None),
        ("巴黎是法国的首都。", None),  # letters of any script count as content
        ("42", None),
    ],
)
def test_only_stop_words(response: str, expected: str | None) -> None:
    assert check_only_stop_words(response) == expected


@pytest.mark.parametrize(
    ("evolved", "expected"),
    [
        ("#Rewritten Prompt#: Give five tips for staying healthy at night.", COPIES_TEMPLATE),
        ("Using the #Given Prompt#, list healthy habits for nurses.", COPIES_TEMPLATE),
        ("Make the rewritten\nprompt list healthy habits for nurses.", COPIES_TEMPLATE),
        ("#Created Prompt#: Name three rare vegetables.", COPIES_TEMPLATE),
        (DEEPER, None),
        ("Write a prompt that asks for healthy recipes.", None),
    ],
)
def test_template_copy(evolved: str, expected: str | None) -> None:
    assert check_template_copy(evolved) == expected


def test_check_evolution() -> None:
    assert check_evolution(ORIGINAL, DEEPER) is None
    assert check_evolution(ORIGINAL, DEEPER, ANSWER) is None
    assert check_evolution(ORIGINAL, ORIGINAL, ANSWER) == NO_INFORMATION_GAIN
    assert check_evolution(ORIGINAL, "#Rewritten Prompt#: " + DEEPER) == COPIES_TEMPLATE
    assert check_evolution(ORIGINAL, DEEPER, "I'm sorry, I cannot help with that.") == REFUSAL
    assert check_evolution(ORIGINAL, DEEPER, "It is.") == ONLY_STOP_WORDS
    # instruction rules win over response rules, whether or not the response is given
    assert check_evolution(ORIGINAL, ORIGINAL, "Sorry.") == NO_INFORMATION_GAIN
    # similarity_threshold=None keeps only the equality check
    near = "Give three tips for staying healthy!"
    assert check_evolution(ORIGINAL, near) == NO_INFORMATION_GAIN
    assert check_evolution(ORIGINAL, near, similarity_threshold=None) is None


# "Instructions" SmolLM2-135M wrote when asked to rewrite a prompt, each kept as an evolution
# (and answered) before these rules: answers, not instructions.
ANSWERS_135M = [
    "A: The sky looks blue during the day due to a process involving a chemical reaction"
    " involving a pigment of an element called *blue*.",
    "The sky appears to be **blue during the day due to a chemical process involving a pigment"
    " of the element blue**, which is composed of two hydrogen atoms and a single oxygen atom.",
    "The difference between weather and climate:\n\nThe difference between weather and climate"
    " is a matter of terminology. Weather refers to the weather as it is described by"
    " scientists, while climate refers to the long-term average of weather phenomena.",
    "```python\ndef is_palindrome(s: str) -> bool:\n    s = ''.join(c for c in s if"
    " c.isalnum()).lower()\n    return s == s[::-1]\n```\n\nThis function uses Python's slicing"
    " feature to reverse the input string.",
    "The sky looks blue during the day because the Earth's atmosphere is composed of tiny"
    " molecules. When light from the sun hits the Earth's atmosphere, it scatters in different"
    " directions, including the blue light.",  # "including": no request verb
    "Sure! The capital of France is Paris.",
]
REQUESTS = [
    ORIGINAL,
    DEEPER,
    "What is the difference between weather and climate",
    "In no more than 50 words, summarize the plot of Romeo and Juliet.",
    "In this task, you need to compare the meaning of the two sentences.",
    "Converting 85 F to Celsius.",
    "I'd like a list of five vegetarian dinners that cook in under 30 minutes.",
    "Fact checking - tell me if the statement is true, false, or unknown.",
    "The following function has a bug.\n```python\ndef add(a, b):\n    return a - b\n```\n"
    "Find it and give the corrected version.",
    "A farmer has 17 sheep and all but 9 die. How many are left",
]


@pytest.mark.parametrize("text", ANSWERS_135M)
def test_answers_are_not_instructions(text: str) -> None:
    assert not reads_as_request(text)
    assert check_not_an_instruction(text, ORIGINAL) == NOT_AN_INSTRUCTION
    assert check_evolution(ORIGINAL, text) == NOT_AN_INSTRUCTION


@pytest.mark.parametrize("text", REQUESTS)
def test_requests_are_instructions(text: str) -> None:
    assert reads_as_request(text)
    assert check_not_an_instruction(text, ORIGINAL) is None


def test_every_shipped_seed_and_example_prompt_reads_as_a_request() -> None:
    root = Path(__file__).resolve().parents[1]
    texts = [json.loads(x)["instruction"] for x in DEFAULT_SEEDS.read_text().splitlines()]
    texts += [json.loads(x)["prompt"] for x in (root / "examples/prompts.jsonl").open()]
    assert [t for t in texts if not reads_as_request(t)] == []


def test_not_an_instruction_only_judges_what_it_can_read() -> None:
    # an original the English cues do not recognise (another language): no judgement
    assert check_not_an_instruction("天空为什么是蓝色的", "解释天空为什么是蓝色的。") is None
    assert check_not_an_instruction(ANSWERS_135M[1], "The sky. Blue.") is None
    assert check_not_an_instruction(ANSWERS_135M[1]) == NOT_AN_INSTRUCTION


def test_repetition() -> None:
    line = "Explain why the sky looks blue during the day."
    assert check_repetition("\n".join([line] * 5)) == REPEATED_TEXT  # one line, five times
    assert check_repetition(f"{line} {line}") == REPEATED_TEXT  # a sentence, twice
    assert check_repetition(f"{line} Use two sentences.") is None
    # short lines of a quoted input may recur; table rows and code never count
    joke = "Tell me why this joke is not funny.\n" + "Knock knock!\nWho is there?\n" * 3
    assert check_repetition(joke) is None
    assert check_repetition("Who is there?\n" * 4) == REPEATED_TEXT
    table = "Sum each row.\n" + "| one two three | four five six seven |\n" * 4
    assert check_repetition(table) is None
    code = "Fix it.\n```\nprint('the same line again')\nprint('the same line again')\n```"
    assert check_repetition(code) is None
    # an answer may repeat a refrain, up to three times
    chorus = "Oh the rain falls on the town tonight."
    assert check_repetition("\n".join([chorus] * 3), most=3) is None
    assert check_repetition("\n".join([chorus] * 4), most=3) == REPEATED_TEXT


def test_answer_repeats_instruction() -> None:
    assert check_answer_repeats_instruction(DEEPER, DEEPER) == ANSWER_REPEATS_INSTRUCTION
    indeed = "Indeed. " + DEEPER
    assert check_answer_repeats_instruction(DEEPER, indeed) == ANSWER_REPEATS_INSTRUCTION
    assert check_answer_repeats_instruction(DEEPER, ANSWER) is None


def test_evolution_rules_on_the_answer() -> None:
    echo = "\n".join(["Drink water and sleep eight hours every day."] * 5)
    assert check_evolution(ORIGINAL, DEEPER, echo) == REPEATED_TEXT
    assert check_evolution(ORIGINAL, DEEPER, DEEPER) == ANSWER_REPEATS_INSTRUCTION
    assert check_evolution(ORIGINAL, "   ") == ONLY_STOP_WORDS  # an empty instruction


def test_tally() -> None:
    counter = FilterCounter()
    cases = [
        (DEEPER, ANSWER),
        (ORIGINAL, ANSWER),
        (DEEPER, "Sorry, no."),
        (DEEPER, "I'm sorry, I cannot help with that."),
    ]
    kept = [e for e, r in cases if counter.record(check_evolution(ORIGINAL, e, r))]
    assert kept == [DEEPER]
    assert counter.as_dict() == {"kept": 1, NO_INFORMATION_GAIN: 1, REFUSAL: 2}
