"""Evol-Instruct (Xu et al. 2023, WizardLM): operations, prompt templates, elimination rules.

Model-free. `check_evolution` returns the name of the first failed elimination rule or
None; tally the results with `FilterCounter.record`.
"""

from __future__ import annotations

import re

from synthloom.quality.rouge import rouge_l_f1
from synthloom.quality.self_instruct_filters import normalize_whitespace

# --- operations and their prompt templates ----------------------------------------------

ADD_CONSTRAINTS = "add_constraints"
DEEPEN = "deepen"
CONCRETIZE = "concretize"
INCREASE_REASONING_STEPS = "increase_reasoning_steps"
COMPLICATE_INPUT = "complicate_input"
BREADTH = "breadth"

IN_DEPTH_OPERATIONS = (
    ADD_CONSTRAINTS,
    DEEPEN,
    CONCRETIZE,
    INCREASE_REASONING_STEPS,
    COMPLICATE_INPUT,
)
OPERATIONS = (*IN_DEPTH_OPERATIONS, BREADTH)

_IN_DEPTH = """\
You are a Prompt Rewriter. Rewrite the given prompt into a more complex version, so that \
even strong AI assistants find it a little harder to handle. The rewritten prompt must \
still make sense, and a person must be able to understand it and answer it.
Keep every non-text part of #Given Prompt#, such as tables, code and its input.
Make it more complex with this method:
{method}
Do not make it verbose: #Rewritten Prompt# may add only 10 to 20 words to #Given Prompt#.
Do not mention the method, and do not use the words '#Given Prompt#', '#Rewritten Prompt#', \
'given prompt' or 'rewritten prompt' in #Rewritten Prompt#.

#Given Prompt#:
{{instruction}}

#Rewritten Prompt#:
"""

_METHODS = {
    ADD_CONSTRAINTS: "Add one more constraint or requirement to #Given Prompt#.",
    DEEPEN: "If #Given Prompt# asks about a particular issue, increase the depth and breadth "
    "of the inquiry.",
    CONCRETIZE: "Replace general concepts with more specific ones.",
    INCREASE_REASONING_STEPS: "If #Given Prompt# can be solved with only a few simple steps "
    "of thinking, rewrite it so that it explicitly asks for reasoning in several steps.",
    COMPLICATE_INPUT: "Make the input harder to work with: add or enlarge structured data "
    "that the prompt must use, such as a table, JSON, XML, SQL, a shell command or code.",
}

BREADTH_TEMPLATE = """\
You are a Prompt Creator. Take inspiration from #Given Prompt# to create a brand-new prompt.
The new prompt must belong to the same domain as #Given Prompt# but be rarer.
#Created Prompt# must be of similar length and difficulty to #Given Prompt#.
#Created Prompt# must make sense, and a person must be able to understand it and answer it.
Do not use the words '#Given Prompt#', '#Created Prompt#', 'given prompt' or \
'created prompt' in #Created Prompt#.

#Given Prompt#:
{instruction}

#Created Prompt#:
"""

TEMPLATES: dict[str, str] = {
    **{op: _IN_DEPTH.format(method=method) for op, method in _METHODS.items()},
    BREADTH: BREADTH_TEMPLATE,
}
"""Operation -> prompt template with one `{instruction}` placeholder (for `str.format`)."""


def build_prompt(operation: str, instruction: str) -> str:
    """The evolving prompt for `operation` applied to `instruction`."""
    return TEMPLATES[operation].format(instruction=instruction.strip())


# --- elimination rules ------------------------------------------------------------------

NO_INFORMATION_GAIN = "no_information_gain"
REFUSAL = "refusal"
ONLY_STOP_WORDS = "only_stop_words"
COPIES_TEMPLATE = "copies_template"

SIMILARITY_THRESHOLD = 0.9
REFUSAL_MAX_WORDS = 80
TEMPLATE_PHRASES = ("given prompt", "rewritten prompt", "created prompt")
"""Case-insensitive; these also match "#Given Prompt#" and "#Rewritten Prompt#"."""

STOP_WORDS = frozenset(
    """
    a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for
    from further had has have having he her here hers herself him himself his how i if in
    into is it its itself just me more most my myself no nor not now of off on once only or
    other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up
    very was we were what when where which while who whom why will with would you your
    yours yourself yourselves
    s t d ll m re ve don isn aren wasn weren doesn didn hasn haven hadn won wouldn shouldn
    couldn cannot mustn
    """.split()
)
"""English function words; contraction pieces ("don", "t") are included because the
response is split at apostrophes."""

_WORD = re.compile(r"[^\W_]+")  # letters or digits of any script


def check_information_gain(
    original: str, evolved: str, threshold: float | None = SIMILARITY_THRESHOLD
) -> str | None:
    """Fail an evolved instruction that is not different enough from the original.

    The paper asks ChatGPT whether the two are equal; model-free, we fail one whose
    normalized text (case and whitespace) equals the original or whose ROUGE-L F1 with it
    is >= `threshold` (None: equality only). Callers may add the model check on top.
    """
    if normalize_whitespace(original).casefold() == normalize_whitespace(evolved).casefold():
        return NO_INFORMATION_GAIN
    if threshold is not None and rouge_l_f1(original, evolved) >= threshold:
        return NO_INFORMATION_GAIN
    return None


def check_refusal(response: str) -> str | None:
    """Fail a response that contains "sorry" (any case) and has fewer than 80 words."""
    is_short = len(response.split()) < REFUSAL_MAX_WORDS
    return REFUSAL if is_short and "sorry" in response.casefold() else None


def check_only_stop_words(response: str) -> str | None:
    """Fail a response made only of punctuation and stop words (an empty one included)."""
    words = _WORD.findall(response.casefold())
    return ONLY_STOP_WORDS if all(w in STOP_WORDS for w in words) else None


def check_template_copy(evolved: str) -> str | None:
    """Fail an evolved instruction that copies words of the evolving prompt template."""
    text = normalize_whitespace(evolved).casefold()
    return COPIES_TEMPLATE if any(p in text for p in TEMPLATE_PHRASES) else None


def check_evolution(
    original: str,
    evolved: str,
    response: str | None = None,
    similarity_threshold: float | None = SIMILARITY_THRESHOLD,
) -> str | None:
    """First failed elimination rule, or None if the evolution stands.

    Instruction rules run first, then the response rules if `response` is given, so the
    instruction can be checked before paying for its answer.
    """
    reason = check_information_gain(original, evolved, similarity_threshold)
    reason = reason or check_template_copy(evolved)
    if response is not None:
        reason = reason or check_refusal(response) or check_only_stop_words(response)
    return reason
