import pytest

from synthloom.quality.evol_rules import (
    BREADTH,
    COPIES_TEMPLATE,
    IN_DEPTH_OPERATIONS,
    NO_INFORMATION_GAIN,
    ONLY_STOP_WORDS,
    OPERATIONS,
    REFUSAL,
    TEMPLATES,
    build_prompt,
    check_evolution,
    check_information_gain,
    check_only_stop_words,
    check_refusal,
    check_template_copy,
)
from synthloom.quality.self_instruct_filters import FilterCounter

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
    assert set(TEMPLATES) == set(OPERATIONS)


@pytest.mark.parametrize("operation", IN_DEPTH_OPERATIONS)
def test_in_depth_templates(operation: str) -> None:
    prompt = build_prompt(operation, "  Sum {a} and {b}.  ")
    assert "more complex version" in prompt
    assert "10 to 20 words" in prompt
    assert "#Given Prompt#:\nSum {a} and {b}.\n" in prompt  # braces in the instruction survive
    assert prompt.endswith("#Rewritten Prompt#:\n")


def test_in_depth_templates_differ_by_method() -> None:
    assert len({TEMPLATES[op] for op in IN_DEPTH_OPERATIONS}) == len(IN_DEPTH_OPERATIONS)


def test_breadth_template() -> None:
    prompt = build_prompt(BREADTH, ORIGINAL)
    assert "brand-new prompt" in prompt
    assert "same domain" in prompt and "rarer" in prompt
    assert f"#Given Prompt#:\n{ORIGINAL}\n" in prompt
    assert prompt.endswith("#Created Prompt#:\n")
    assert "#Rewritten Prompt#" not in prompt


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
