"""Evol-Instruct (Xu et al. 2023, WizardLM): operations and elimination rules.

Model-free. `check_evolution` returns the name of the first failed elimination rule or
None; tally the results with `FilterCounter.record`. Beyond the paper's four rules (no
information gain, copied template words, a short "sorry" answer, an answer of only stop
words), an evolved instruction fails when it is empty of content, repeats a sentence, or does
not read as a request at all (small models answer the prompt instead of rewriting it), and an
answer fails when it repeats one sentence over and over or only restates its instruction.
"""

from __future__ import annotations

import re
from collections import Counter

from synthloom.quality.rouge import rouge_l_f1
from synthloom.quality.self_instruct_filters import normalize_whitespace

# --- operations (their prompts: tasks/prompts/evol_rewrite.jinja) -----------------------

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


# --- instructions that are answers, and repeated text -----------------------------------

REPEATED_TEXT = "repeated_text"
NOT_AN_INSTRUCTION = "not_an_instruction"
ANSWER_REPEATS_INSTRUCTION = "answer_repeats_instruction"

REQUEST_VERBS = frozenset(
    """
    act adapt add analyse analyze answer apply argue arrange ask assess assign assume
    brainstorm break build calculate categorise categorize change check choose cite classify
    combine come compare compile complete compose compute condense consider construct continue
    convert correct count craft create debug decide decode define demonstrate derive describe
    design detect determine develop devise discuss distinguish divide document draft edit
    elaborate enumerate estimate evaluate examine explain explore express extend extract fill
    find finish fix format formulate generate give group guess help highlight identify
    illustrate imagine implement improve include indicate infer interpret introduce invent
    justify label let link list locate make map match mention modify name note offer order
    organise organize outline output paraphrase parse pick plan point predict prepare present
    pretend print propose prove provide put rank rate read recommend reduce refactor
    reformulate rephrase replace reply report represent research respond restate return reverse
    review revise rewrite say score select share shorten show simplify solve sort specify split
    state suggest summarise summarize supply suppose tag take tell test think transform
    translate try turn underline use verify walk write
    """.split()
)
"""Verbs that open a request ("Explain ...", "In two lines, summarize ...")."""
_ASKING = re.compile(
    r"[?\uff1f]|\b(?:please|kindly|your task|you are asked|i want you|i need you|can you"
    r"|could you|would you|will you|i'd like|i would like|help me|tell me|show me|give me|let's"
    r"|how (?:to|do|does|did|can|could|would|should|many|much|long|often)"
    r"|what (?:is|are|was|were|do|does|did|would|should|can|could|happens)"
    r"|why (?:is|are|do|does|did|would|should|can)|which (?:of|one))\b",
    re.IGNORECASE,
)
_ANSWER_OPENING = re.compile(
    r"\A\W*(?:(?:a|answer|response|output|solution|result)\s*:"
    r"|(?:sure|certainly|of course|absolutely|great question)\b)",
    re.IGNORECASE,
)
_CODE_BLOCK = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)
_SENTENCE = re.compile(r"[.!?;\n]+")
_CLAUSE = re.compile(r"[:,()]+|\s[-\u2013\u2014]+\s")
_LEAD = frozenset("and then also now first next finally briefly carefully simply just".split())
_MODAL = re.compile(
    r"\b(?:you|we)\s+(?:need to|have to|must|should|will|are to|are asked to)\s+(\w+)",
    re.IGNORECASE,
)


def _is_gerund(word: str) -> bool:
    """The -ing form of a request verb ("Converting 85 F to Celsius.")."""
    stem = word[:-3] if word.endswith("ing") else ""
    return bool(stem) and (stem in REQUEST_VERBS or stem + "e" in REQUEST_VERBS)


def _prose(text: str) -> str:
    """`text` without fenced code blocks and table rows (they may repeat and hold anything)."""
    text = _CODE_BLOCK.sub("\n", text)
    return "\n".join(x for x in text.splitlines() if not x.lstrip().startswith("|"))


def reads_as_request(text: str) -> bool:
    """Whether `text` asks for something: a question mark, a request phrase ("Can you",
    "please", "you need to compare"), or a clause opening with a request verb ("Explain ...",
    "In three steps, derive ...", "Converting 85 F to Celsius."), outside code blocks, and
    not opening like an answer ("A:", "Answer:", "Sure", "Certainly")."""
    prose = _prose(text)
    if _ANSWER_OPENING.match(prose):
        return False
    if _ASKING.search(prose):
        return True
    if any(m.group(1).casefold() in REQUEST_VERBS for m in _MODAL.finditer(prose)):
        return True  # "In this task, you need to compare ..."
    for sentence in _SENTENCE.split(prose):
        for i, clause in enumerate(_CLAUSE.split(sentence)):
            words = _WORD.findall(clause.casefold())
            while words and words[0] in _LEAD:
                words = words[1:]
            # a gerund only opens a sentence: "..., including the blue light" asks nothing
            if words and (words[0] in REQUEST_VERBS or (i == 0 and _is_gerund(words[0]))):
                return True
    return False


def check_not_an_instruction(evolved: str, original: str | None = None) -> str | None:
    """Fail an evolved "instruction" that does not read as a request (`reads_as_request`):
    the small models answer the prompt instead of rewriting it ("A: The sky looks blue
    because ...", a paragraph of facts, a function). English cues: when `original` is given
    and does not read as a request itself (another language, unusual phrasing), the rule
    cannot judge and passes. An answer written as advice ("Water it weekly.") passes too."""
    if original is not None and not reads_as_request(original):
        return None
    return None if reads_as_request(evolved) else NOT_AN_INSTRUCTION


def repeated_units(text: str) -> Counter[str]:
    """How often each line or sentence of three words or more occurs (case, punctuation and
    spacing aside), outside code blocks and table rows."""
    units = re.split(r"(?<=[.!?])\s+|\n+", _prose(text))
    keys = (" ".join(_WORD.findall(u.casefold())) for u in units)
    return Counter(k for k in keys if len(k.split()) >= 3)


def check_repetition(text: str, most: int = 1, long_words: int = 6) -> str | None:
    """Fail text in which a line or sentence of at least `long_words` words occurs more than
    `most` times, or a shorter one (three words or more) more than `most` + 2 times.
    A rewritten instruction repeats no sentence (most=1; a short line such as "Who's there?"
    may recur in a quoted input); an answer may repeat a refrain, not 4 times (most=3)."""
    for key, n in repeated_units(text).items():
        limit = most if len(key.split()) >= long_words else most + 2
        if n > limit:
            return REPEATED_TEXT
    return None


def check_answer_repeats_instruction(
    instruction: str, response: str, threshold: float = SIMILARITY_THRESHOLD
) -> str | None:
    """Fail an answer that only restates its instruction (ROUGE-L F1 >= `threshold`)."""
    return ANSWER_REPEATS_INSTRUCTION if rouge_l_f1(instruction, response) >= threshold else None


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
    reason = reason or check_template_copy(evolved) or check_only_stop_words(evolved)
    reason = reason or check_repetition(evolved) or check_not_an_instruction(evolved, original)
    if response is not None:
        reason = reason or check_refusal(response) or check_only_stop_words(response)
        reason = reason or check_repetition(response, most=3)
        reason = reason or check_answer_repeats_instruction(evolved, response)
    return reason
