import pytest

from synthloom.quality.rouge import NoveltyIndex
from synthloom.quality.self_instruct_filters import (
    BLOCKED_WORD,
    BLOCKED_WORDS,
    CUT_OFF,
    DUPLICATE_INSTANCE,
    EMPTY_OUTPUT,
    INPUT_EQUALS_OUTPUT,
    NON_ASCII,
    OUTPUT_EQUALS_INSTRUCTION,
    OVER_INSTANCE_LIMIT,
    STARTS_WITH_PUNCTUATION,
    TOO_LONG,
    TOO_SHORT,
    TOO_SIMILAR,
    WRITE_A_PROGRAM,
    FilterCounter,
    SelfInstructFilter,
    cap_instances,
    check_blocked_words,
    check_instance,
    check_instruction,
    check_length,
    check_non_ascii,
    check_similarity,
    check_starts_with_punctuation,
    check_write_a_program,
    filter_instances,
    is_classification,
    parse_instances,
    parse_instruction_list,
    screen_instances,
)

GOOD = "Give three tips for staying healthy."

# --- instruction rules -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Summarize it", TOO_SHORT),
        ("Sort these numbers.", TOO_SHORT),  # 3 words: "<= 3" drops it
        ("Sort these numbers ascending.", None),
        (" ".join(["word"] * 150), None),
        (" ".join(["word"] * 151), TOO_LONG),
        (GOOD, None),
    ],
)
def test_length(text: str, expected: str | None) -> None:
    assert check_length(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Draw a picture of a cat",
        "Describe how maps are used in navigation",
        "Go to the website and summarize the news.",
        "Tell me where to go   to relax on weekends.",
        "Summarize the plot of Hamlet in two sentences.",
        "Explain what this IMAGE shows to a child.",
        "Convert the file-based config into environment variables.",
    ],
)
def test_blocked_words_dropped(text: str) -> None:
    assert check_blocked_words(text) == BLOCKED_WORD


@pytest.mark.parametrize("word", BLOCKED_WORDS)
def test_every_blocked_word_matches(word: str) -> None:
    assert check_blocked_words(f"Please describe the {word.title()} in detail.") == BLOCKED_WORD


@pytest.mark.parametrize(
    "text",
    [
        "Explain the mapping between keys and values in a dictionary",
        "Rewrite my profile summary to sound friendlier.",
        "Describe the graphical user interface of a calculator.",
        "Explain why algorithms matter to programmers.",  # "go" inside "algorithms"
        "Explain the difference between a redraw and a repaint.",
        GOOD,
    ],
)
def test_blocked_words_are_whole_words(text: str) -> None:
    assert check_blocked_words(text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Write a program that sorts a list", WRITE_A_PROGRAM),
        ("  write a Program to reverse a string.", WRITE_A_PROGRAM),
        ("Write a poem about computer programs.", None),
        ("Explain how to write a program that sorts a list.", None),
    ],
)
def test_write_a_program(text: str, expected: str | None) -> None:
    assert check_write_a_program(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"Quote" this sentence back to me.', STARTS_WITH_PUNCTUATION),
        ("- List three fruits that are red.", STARTS_WITH_PUNCTUATION),
        ("? What is the tallest mountain on Earth", STARTS_WITH_PUNCTUATION),
        (GOOD, None),
        ("", None),
    ],
)
def test_starts_with_punctuation(text: str, expected: str | None) -> None:
    assert check_starts_with_punctuation(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("¿Qué hora es en Madrid ahora mismo?", NON_ASCII),
        ("Tell me why this joke’s not funny.", None),  # only the first character counts
        ("“Quote” this sentence back to me please.", NON_ASCII),
        (GOOD, None),
    ],
)
def test_non_ascii(text: str, expected: str | None) -> None:
    assert check_non_ascii(text) == expected


def test_similarity() -> None:
    index = NoveltyIndex([GOOD])
    assert check_similarity("Give three tips for staying healthy and fit.", index) == TOO_SIMILAR
    assert check_similarity("Explain how photosynthesis works in plants.", index) is None
    assert check_similarity("Give three tips for staying healthy and fit.", index, 0.9) is None
    index.add("a b c d e f g h i j")
    assert check_similarity("a b c d e f g x y z", index) is None  # exactly 0.7 is kept


def test_check_instruction_order_and_similarity_only_with_index() -> None:
    assert check_instruction("Write a program to draw a cat.") == BLOCKED_WORD
    assert check_instruction("Write a program that sorts a list") == WRITE_A_PROGRAM
    assert check_instruction("¿Qué hora es en Madrid ahora mismo?") == NON_ASCII
    assert check_instruction(GOOD) is None
    assert check_instruction(GOOD, NoveltyIndex([GOOD])) == TOO_SIMILAR


def test_self_instruct_filter_stream() -> None:
    f = SelfInstructFilter()
    f.add_existing([GOOD])
    kept = f.filter(
        [
            "Draw a picture of a cat",
            "Give three tips for staying healthy and fit.",  # near-copy of the seed
            "Explain  the mapping between keys\nand values in a dictionary",
            "Explain the mapping between keys and values in a Python dictionary.",  # of ^
            "Summarize it",
            "Write a program that sorts a list",
            "¿Qué hora es en Madrid ahora mismo?",
            "Suggest a name for a new bakery in Paris.",
        ]
    )
    assert kept == [
        "Explain the mapping between keys and values in a dictionary",
        "Suggest a name for a new bakery in Paris.",
    ]
    assert f.kept == kept
    assert f.removed == {
        BLOCKED_WORD: 1,
        TOO_SIMILAR: 2,
        TOO_SHORT: 1,
        WRITE_A_PROGRAM: 1,
        NON_ASCII: 1,
    }
    assert f.counter.kept == 2
    assert f.filter(["Suggest a name for a new bakery in Paris."]) == []
    assert f.offer("List five fruits that are rich in vitamin C.") is None
    assert f.kept[-1] == "List five fruits that are rich in vitamin C."


def test_filter_counter() -> None:
    counter = FilterCounter()
    assert counter.record(None) is True
    assert counter.record(TOO_SHORT) is False
    counter.record(TOO_SHORT, 2)
    counter.record(None, 0)
    counter.record(TOO_LONG, 0)
    assert counter.as_dict() == {"kept": 1, TOO_SHORT: 3}


# --- instance rules --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("inp", "out", "finish_reason", "expected"),
    [
        ("abc", "abc", None, INPUT_EQUALS_OUTPUT),
        (" abc ", "abc\n", "stop", INPUT_EQUALS_OUTPUT),
        ("x", "", None, EMPTY_OUTPUT),
        ("x", "  \n", None, EMPTY_OUTPUT),
        ("", "", None, EMPTY_OUTPUT),
        ("x", "y", "length", CUT_OFF),
        ("x", "y", "stop", None),
        ("", "y", None, None),
    ],
)
def test_check_instance(
    inp: str, out: str, finish_reason: str | None, expected: str | None
) -> None:
    assert check_instance(inp, out, finish_reason) == expected


def test_cap_instances() -> None:
    items = [(str(i), f"out {i}") for i in range(7)]
    kept, cut = cap_instances(items)
    assert kept == items[:5]
    assert cut == 2
    assert cap_instances(items[:3]) == (items[:3], 0)


def test_filter_instances() -> None:
    counter = FilterCounter()
    pairs = [("a", "b"), ("c", "c"), ("d", ""), ("e", "f"), ("g", "cut mid-sent")]
    assert filter_instances(pairs, "length", counter=counter) == [("a", "b"), ("e", "f")]
    assert counter.as_dict() == {"kept": 2, INPUT_EQUALS_OUTPUT: 1, EMPTY_OUTPUT: 1, CUT_OFF: 1}

    counter = FilterCounter()
    many = [(str(i), f"out {i}") for i in range(7)]
    assert filter_instances(many, "stop", counter=counter) == many[:5]
    assert counter.as_dict() == {"kept": 5, OVER_INSTANCE_LIMIT: 2}
    assert filter_instances([], "length") == []


@pytest.mark.parametrize(
    ("inp", "out", "expected"),
    [
        ("", GOOD, OUTPUT_EQUALS_INSTRUCTION),
        ("some input", "  give three TIPS for\nstaying healthy. ", OUTPUT_EQUALS_INSTRUCTION),
        ("", "Give three tips for staying healthy", None),  # not the same text: kept
        ("", "1. Eat vegetables. 2. Sleep well. 3. Walk daily.", None),
        ("hello  world", "hello world", INPUT_EQUALS_OUTPUT),  # whitespace aside
        ("hello world", "Hello world.", None),  # a capitalisation task: case counts
    ],
)
def test_output_repeating_the_instruction_or_the_input(
    inp: str, out: str, expected: str | None
) -> None:
    assert check_instance(inp, out, None, GOOD) == expected


def test_exact_duplicates_within_a_task_are_dropped() -> None:
    nonsense = ("The cat is a cat.", "Cat.")
    pairs = [
        ("", "Eat well."),
        nonsense,
        (" the cat  is a CAT. ", "cat."),  # the same pair, spacing and case aside
        ("", GOOD),  # repeats the instruction
        nonsense,
        ("The cat is a dog.", "Cat."),  # another input: kept
        ("", "Eat well!"),  # another output: kept
        nonsense,
    ]
    kept, rejected = screen_instances(pairs, "stop", instruction=GOOD)
    assert kept == [pairs[0], nonsense, pairs[5], pairs[6]]
    assert [(r.index, r.reason) for r in rejected] == [
        (2, DUPLICATE_INSTANCE),
        (3, OUTPUT_EQUALS_INSTRUCTION),
        (4, DUPLICATE_INSTANCE),
        (7, DUPLICATE_INSTANCE),
    ]
    assert (rejected[0].input, rejected[0].output) == pairs[2]
    counter = FilterCounter()
    assert filter_instances(pairs, "stop", counter=counter, instruction=GOOD) == kept
    assert counter.as_dict() == {"kept": 4, DUPLICATE_INSTANCE: 3, OUTPUT_EQUALS_INSTRUCTION: 1}


def test_duplicates_do_not_count_towards_the_cap() -> None:
    pairs = [("a", "1"), ("a", "1"), ("b", "2"), ("c", "3"), ("d", "4"), ("e", "5"), ("f", "6")]
    kept, rejected = screen_instances(pairs)
    assert kept == [pairs[0], *pairs[2:6]]
    assert [(r.index, r.reason) for r in rejected] == [
        (1, DUPLICATE_INSTANCE),
        (6, OVER_INSTANCE_LIMIT),
    ]


# --- classification --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instruction", "expected"),
    [
        ("Classify the sentiment of the sentence into positive, negative or mixed.", True),
        ("Tell me if the sentence contains toxic language.", True),
        ("Identify whether the email is spam. Output true or false.", True),
        ('Does the document support the claim? Answer "Support" or "Unsupport".', True),
        (GOOD, False),
        ("Write a short story about a dragon who learns to fly.", False),
    ],
)
def test_is_classification_heuristic(instruction: str, expected: bool) -> None:
    assert is_classification(instruction, None) is expected


def test_is_classification_declared_wins() -> None:
    assert is_classification(GOOD, True) is True
    assert is_classification("Classify the sentiment of the review.", False) is False


# --- parsing ---------------------------------------------------------------------------


def test_parse_numbered_continuation() -> None:
    # The prompt ends with "9." so the model's first instruction has no number.
    text = " Name three rivers in Europe.\n10. Summarize the plot\nof Hamlet.\n11) Round 3.5 up.\n"
    assert parse_instruction_list(text) == [
        "Name three rivers in Europe.",
        "Summarize the plot of Hamlet.",
        "Round 3.5 up.",
    ]
    assert parse_instruction_list(text, cut_off=True) == [
        "Name three rivers in Europe.",
        "Summarize the plot of Hamlet.",
    ]


def test_parse_task_format() -> None:
    text = "Task 9: Find the odd one out.\nTask 10: Suggest a title\nTask 11:   \n"
    assert parse_instruction_list(text) == ["Find the odd one out.", "Suggest a title"]


def test_parse_strips_a_repeated_number() -> None:
    # small models sometimes number twice: "Task 9: 3. (Answer the riddle)"
    text = "Task 9: 3. Answer the riddle.\n10. 2) 4. List 3 primes.\n11. 3 cats sat. Why?"
    assert parse_instruction_list(text) == [
        "Answer the riddle.",
        "List 3 primes.",
        "3 cats sat. Why?",
    ]


def test_parse_alpaca_format_and_preamble() -> None:
    text = (
        "Sure! Here are the tasks:\n"
        "1. Instruction: Give three tips for staying healthy.\n1. Input:\n<noinput>\n"
        "1. Output:\nEat well.\n###\n"
        "2. Instruction: Convert 10:30 to 24-hour time.\n2. Input:\n10:30 pm\n2. Output:\n22:30"
    )
    assert parse_instruction_list(text) == [
        "Give three tips for staying healthy.",
        "Convert 10:30 to 24-hour time.",
    ]


def test_parse_instruction_list_empty() -> None:
    assert parse_instruction_list("") == []
    assert parse_instruction_list("Just one unnumbered instruction here.") == [
        "Just one unnumbered instruction here."
    ]


def test_parse_instances_input_first() -> None:
    text = (
        "Example 1\nInput: 2 + 2\nOutput: 4\n\n"
        "Example 2\nParagraph: The cat sat.\nOutput: For example, the cat.\n\n"
        "Example 3\nOutput:\nNo input here.\n"
    )
    assert parse_instances(text, output_first=False) == [
        ("2 + 2", "4"),
        ("Paragraph: The cat sat.", "For example, the cat."),
        ("", "No input here."),
    ]


def test_parse_instances_input_first_without_headers() -> None:
    text = "Input 1: a\nOutput 1: b\nInput 2: c\nd\nOutput 2: e\nf"
    assert parse_instances(text, output_first=False) == [("a", "b"), ("c\nd", "e\nf")]
    assert parse_instances("Output: just an answer", output_first=False) == [("", "just an answer")]
    assert parse_instances("no labels at all", output_first=False) == []


def test_parse_instances_output_first() -> None:
    text = (
        "Class label: Positive\nSentence: I love it.\n"
        "Class label: Negative\nInput: I hate it.\n\n"
        "Example 3\nClass label:\nNeutral\nIt is a chair.\n"
        "Class label: Mixed"
    )
    assert parse_instances(text, output_first=True) == [
        ("Sentence: I love it.", "Positive"),
        ("I hate it.", "Negative"),
        ("It is a chair.", "Neutral"),
        ("", "Mixed"),
    ]
    assert parse_instances("Input: x\nOutput: y", output_first=True) == []
    assert parse_instances("Class label: A\nSentence: x\nInput: y", output_first=True) == [
        ("Sentence: x\nInput: y", "A")
    ]
