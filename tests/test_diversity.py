"""Diversity at scale (issue 16): attribute samplers follow their weights and conditions, topic
trees spread units over their leaves, real examples rotate without repeating a k-set, dedup
while generating re-asks a planted repeat (counted at the server), reruns draw the same, and
every run ends with a spread summary. Without the new options nothing a model is sent changes."""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from synthloom.diversity.draws import Diversity, DiversityRun
from synthloom.diversity.examples import Rotation
from synthloom.diversity.index import Hit, NearIndex
from synthloom.diversity.samplers import Samplers, SamplerSpec, parse_spec, unit_rng
from synthloom.diversity.tree import Spreader, TopicTree
from synthloom.errors import UserError
from synthloom.llm.engine import call_seed
from synthloom.quality.dedup import words
from synthloom.runner import run_identity, run_task
from synthloom.settings import ModelSettings
from synthloom.tasks.qa import QAParams, QATask
from synthloom.tasks.registry import task_class
from synthloom.testing.stub_server import StubServer
from tests.conftest import synthloom
from tests.test_self_instruct import responder as self_instruct_responder

DRAWS = 10_000
# chi-square critical values at p = 0.001 by degrees of freedom: a correct sampler fails one
# of these tests about once in a thousand seeds; the seeds here are fixed, so it never flakes
CHI2_999 = {1: 10.83, 2: 13.82, 3: 16.27, 4: 18.47, 5: 20.52, 9: 27.88}


def _chi2(counts: Counter[Any], expected: dict[Any, float]) -> float:
    total = sum(counts.values())
    return sum((counts[k] - p * total) ** 2 / (p * total) for k, p in expected.items())


def _draws(specs: dict[str, str], n: int = DRAWS, seed: int = 7) -> list[dict[str, Any]]:
    """n units' attributes, drawn the way a run draws them (per unit id, from the run seed)."""
    samplers = Samplers({k: SamplerSpec.model_validate(v) for k, v in specs.items()})
    return [samplers.draw(unit_rng(seed, f"topic:{i}", 0, "samplers")) for i in range(n)]


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (path / "records.jsonl").read_text().splitlines()]


# -- samplers ----------------------------------------------------------------------------


def test_categorical_draws_follow_their_weights() -> None:
    draws = _draws({"tone": "formal:5,casual:3,angry:2"})
    counts = Counter(d["tone"] for d in draws)
    assert _chi2(counts, {"formal": 0.5, "casual": 0.3, "angry": 0.2}) < CHI2_999[2]
    uniform = Counter(d["level"] for d in _draws({"level": "a,b,c,d"}))
    assert _chi2(uniform, dict.fromkeys("abcd", 0.25)) < CHI2_999[3]


def test_conditional_draws_follow_the_case_of_their_attribute() -> None:
    draws = _draws(
        {
            "audience": "child:1,expert:3",
            "detail": "audience{child: short:4,simple:1; expert: long,technical}",
        }
    )
    parents = Counter(d["audience"] for d in draws)
    assert _chi2(parents, {"child": 0.25, "expert": 0.75}) < CHI2_999[1]
    child = Counter(d["detail"] for d in draws if d["audience"] == "child")
    expert = Counter(d["detail"] for d in draws if d["audience"] == "expert")
    assert set(child) == {"short", "simple"} and set(expert) == {"long", "technical"}
    assert _chi2(child, {"short": 0.8, "simple": 0.2}) < CHI2_999[1]
    assert _chi2(expert, {"long": 0.5, "technical": 0.5}) < CHI2_999[1]


def test_a_default_case_takes_the_other_values() -> None:
    draws = _draws({"level": "easy,medium,hard", "words": "level{hard: 200..300; *: 20..50}"})
    for d in draws:
        low, high = (200, 300) if d["level"] == "hard" else (20, 50)
        assert low <= d["words"] <= high and isinstance(d["words"], int)


def test_numeric_ranges_are_uniform_integers_or_rounded_floats() -> None:
    ints = Counter(d["n"] for d in _draws({"n": "1..10"}))
    assert set(ints) == set(range(1, 11))
    assert _chi2(ints, {k: 0.1 for k in range(1, 11)}) < CHI2_999[9]
    floats = [d["t"] for d in _draws({"t": "0.5..2.0"})]
    assert all(0.5 <= t <= 2.0 and round(t, 2) == t for t in floats)
    bins = Counter(min(4, int((t - 0.5) / 0.3)) for t in floats)
    assert _chi2(bins, {k: 0.2 for k in range(5)}) < CHI2_999[4]


def test_personas_come_from_the_shipped_list_and_the_users_file(tmp_path: Path) -> None:
    mine = tmp_path / "mine.txt"
    mine.write_text("# my personas\na lighthouse keeper\n\na retired astronaut\n")
    spec = SamplerSpec.model_validate(f"@personas,@{mine}")
    samplers = Samplers({"persona": spec})
    values = samplers.universes()["persona"].values
    assert len(values) > 100  # the shipped list
    assert values[-2:] == ("a lighthouse keeper", "a retired astronaut")
    draws = Counter(
        samplers.draw(unit_rng(1, f"u{i}", 0, "samplers"))["persona"] for i in range(DRAWS)
    )
    assert set(draws) <= set(values) and draws["a lighthouse keeper"] > 0
    # every value equally likely: the most drawn is within chance of the mean
    mean = DRAWS / len(values)
    assert max(draws.values()) < mean + 5 * math.sqrt(mean)


def test_recipe_forms_and_command_line_forms_are_the_same_sampler() -> None:
    assert parse_spec("a:3,b") == {"values": {"a": 3.0, "b": 1.0}}
    assert parse_spec("3..9") == {"range": (3, 9)}
    assert parse_spec("lvl{x: a,b; *: c}") == {"when": "lvl", "cases": {"x": "a,b"}, "default": "c"}
    from_yaml = SamplerSpec.model_validate({"values": {"a": 3, "b": 1}})
    assert from_yaml == SamplerSpec.model_validate("a:3,b:1")
    assert SamplerSpec.model_validate(["x", "y"]).values == ["x", "y"]


@pytest.mark.parametrize(
    ("specs", "wanted"),
    [
        ({"d": "lvl{a: x}"}, "`samplers` d: when: lvl names no sampler"),
        ({"lvl": "a,b", "d": "lvl{a: x}"}, "`samplers` d: no case for lvl = b"),
        ({"a": "b{x: 1}", "b": "a{y: 2}"}, "goes round in a loop"),
        ({"n": "1..5", "d": "n{1: x}"}, "is a number range; give a default"),
    ],
)
def test_sampler_mistakes_name_the_sampler_and_the_fix(specs: dict[str, str], wanted: str) -> None:
    with pytest.raises(UserError, match=wanted.replace("(", r"\(")):
        Samplers({k: SamplerSpec.model_validate(v) for k, v in specs.items()})


def test_bad_samplers_are_one_line_on_the_command_line(tmp_path: Path) -> None:
    for spec, wanted in (
        ("x=5..1", "--sample: range [5, 1]: low is above high"),
        ("x=a:0", "weights must be numbers >= 0"),
        ("p=@nope.txt", "--sample p: nope.txt: file not found"),
        ("x=", "--sample: expected NAME=SPEC"),
    ):
        result = synthloom("qa", "--topic", "t", "--sample", spec, "--out", str(tmp_path / "o"))
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, result.stderr
        assert lines[0].startswith("synthloom: error: ") and wanted in lines[0]
        assert not (tmp_path / "o").exists()


# -- topic trees -------------------------------------------------------------------------

TREE = """\
root: customer service
subtopics:
  - topic: billing
    weight: 2
    subtopics: [refunds, late fees]
  - topic: shipping
    subtopics: [delays, international, lost parcels]
  - accounts
"""


def test_units_spread_over_the_leaves_by_weight_and_every_branch_first(tmp_path: Path) -> None:
    path = tmp_path / "tree.yaml"
    path.write_text(TREE)
    leaves = TopicTree.load(path).leaves()
    paths = [leaf.path[1:] for leaf in leaves]
    # interleaved: the first leaf of every branch before the second of any
    assert paths[:3] == [("billing", "refunds"), ("shipping", "delays"), ("accounts",)]
    spreader = Spreader([leaf.weight for leaf in leaves])
    n = 900
    counts = Counter(spreader.leaf(i) for i in range(n))
    total = sum(leaf.weight for leaf in leaves)
    for i, leaf in enumerate(leaves):  # within one unit of each leaf's share, at every prefix
        assert abs(counts[i] - n * leaf.weight / total) <= 1
    prefix = Counter(spreader.leaf(i) for i in range(37))
    assert all(abs(prefix[i] - 37 * x.weight / total) <= 1 for i, x in enumerate(leaves))
    again = Spreader([leaf.weight for leaf in leaves])
    assert [again.leaf(i) for i in range(50)] == [spreader.leaf(i) for i in range(50)]


def test_a_tree_file_mistake_names_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "tree.yaml"
    path.write_text(TREE.replace("weight: 2", "weight: -1"))
    with pytest.raises(UserError, match=r"tree.yaml:4: subtopics\[0\].weight: .*greater than 0"):
        TopicTree.load(path)
    path.write_text(TREE.replace("late fees", "refunds"))
    with pytest.raises(
        UserError,
        match=r"tree.yaml:5: subtopics\[0\].subtopics\[1\]: 'refunds' is already a subtopic here",
    ):
        TopicTree.load(path)


PLANTED = {
    # the model's lists, with planted near-duplicate siblings (case, plural, hyphen, a copy
    # of the parent) that the tree must merge or drop
    "customer service": ["Billing", "billing", "Returns policy", "Return policies", "Shipping"],
    "Billing": ["Refunds", "billing", "refund", "Late fees", "Late-fees", "Invoices"],
    "Returns policy": ["Return window", "Return windows", "Store credit", "Exchanges"],
    "Shipping": ["Delays", "Lost parcels", "Lost parcel", "Tracking numbers"],
}


def _planted_topics(body: dict[str, Any]) -> str:
    user = body["messages"][-1]["content"]
    path = user.split("Topic: ", 1)[1].splitlines()[0].split(" > ")
    return json.dumps({"subtopics": PLANTED[path[-1]]})


def test_topics_merges_planted_near_duplicate_siblings(tmp_path: Path) -> None:
    tree_file = tmp_path / "tree.yaml"
    with StubServer(responder=_planted_topics, record=True) as server:
        result = synthloom(
            "topics", "--root", "customer service", "--depth", "2", "--breadth", "3",
            "--out", str(tree_file), "--backend", "openai", "--base-url", server.base_url,
            "--model", "m", cwd=tmp_path,
        )  # fmt: skip
        requests = server.stats.requests
    assert result.returncode == 0, result.stderr
    tree = TopicTree.load(tree_file)
    children = {n.topic: n for n in tree.root.subtopics}
    assert list(children) == ["Billing", "Returns policy", "Shipping"]
    assert children["Returns policy"].merged == ["Return policies"]
    billing = {n.topic: n.merged for n in children["Billing"].subtopics}
    assert billing == {"Refunds": ["refund"], "Late fees": ["Late-fees"], "Invoices": []}
    returns = {n.topic: n.merged for n in children["Returns policy"].subtopics}
    assert returns == {"Return window": ["Return windows"], "Store credit": [], "Exchanges": []}
    shipping = [n.topic for n in children["Shipping"].subtopics]
    assert shipping == ["Delays", "Lost parcels", "Tracking numbers"]
    assert len(tree.leaves()) == 9
    assert requests == 4  # the root and its three subtopics: each list gave 3 distinct names
    run = next((tmp_path / "runs").iterdir())
    assert (run / "tree.yaml").read_text() == tree_file.read_text()
    summary = json.loads((run / "manifest.json").read_text())["summary"]
    # billing, policies; refund, fees; windows; parcel
    assert summary["counters"]["subtopics_merged"] == 6
    assert summary["counters"]["subtopics_dropped_parent_copy"] == 1  # "billing" under Billing


def test_topics_asks_again_when_merging_leaves_too_few(tmp_path: Path) -> None:
    answers = iter(
        [
            ["Refunds", "refunds", "Refund"],  # one distinct name
            ["Late fees", "Refunds", "Invoices"],  # asked again: two more
        ]
    )
    bodies: list[dict[str, Any]] = []

    def responder(body: dict[str, Any]) -> str:
        bodies.append(body)
        return json.dumps({"subtopics": next(answers)})

    with StubServer(responder=responder) as server:
        settings = ModelSettings(backend="openai", base_url=server.base_url, model="m")
        cls = task_class("topics")
        task = cls(cls.Params(root="billing", depth=1, breadth=3, out=tmp_path / "t.yaml"))
        summary = run_task(task, settings, tmp_path / "run", show_progress=False)
    assert [n.topic for n in TopicTree.load(tmp_path / "t.yaml").root.subtopics] == [
        "Refunds",
        "Late fees",
        "Invoices",
    ]
    again = bodies[1]["messages"][-1]["content"]
    assert "already listed" in again and "- Refunds" in again and "List 2 more" in again
    assert summary.counters["topics_asked_again"] == 1


# -- real-example rotation ---------------------------------------------------------------


@pytest.mark.parametrize(("m", "k"), [(6, 2), (5, 2), (7, 3), (4, 4), (50, 3)])
def test_rotation_never_repeats_a_k_set_while_one_is_unshown(m: int, k: int) -> None:
    rotation = Rotation(m, k, seed=3)
    total = math.comb(m, k)
    calls = min(total, 3000)
    sets = [frozenset(rotation.shots(i)) for i in range(calls)]
    assert all(len(s) == k for s in sets)
    assert len(set(sets)) == calls  # no k-set twice before all were shown
    # dealt from shuffles: the first passes show every example as often as every other
    first = Counter(x for i in range(m // k) for x in rotation.shots(i))
    assert max(first.values()) == 1 and len(first) == (m // k) * k
    if total < 3000:  # then the rotation starts over, again without repeats in a cycle
        nxt = [frozenset(rotation.shots(i)) for i in range(total, 2 * total)]
        assert len(set(nxt)) == total
    assert [Rotation(m, k, seed=3).shots(i) for i in range(20)] == [
        rotation.shots(i) for i in range(20)
    ]


def test_each_call_shows_other_real_examples(tmp_path: Path) -> None:
    real = tmp_path / "real.jsonl"
    rows = [
        {"question": f"Real question number {i} about refunds?", "answer": f"A{i}."}
        for i in range(5)
    ]
    real.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with StubServer(record=True) as server:
        settings = ModelSettings(backend="openai", base_url=server.base_url, model="m")
        params = QAParams(topic="returns", n=10, examples=real, shots=2)
        run_task(QATask(params), settings, tmp_path / "run", show_progress=False)
        bodies = server.bodies
    shown = []
    for body in bodies:
        text = body["messages"][-1]["content"]
        shown.append(frozenset(i for i in range(5) if f"number {i} about" in text))
    assert len(shown) == 10 and all(len(s) == 2 for s in shown)
    assert len(set(shown)) == 10  # C(5, 2) = 10: every call a different pair
    records = _rows(tmp_path / "run")
    assert all(len(r["provenance"]["conditioning"]["examples"]) == 2 for r in records)


# -- reruns, dedup while generating, spread ----------------------------------------------


def _diverse_qa(tree: Path, n: int = 24, **extra: Any) -> QATask:
    return QATask(
        QAParams(
            topics=tree,
            n=n,
            samplers={"persona": "@personas", "tone": "calm:3,angry:1"},
            **extra,
        )
    )


def test_reruns_draw_identical_attributes_and_n_grows_without_changing_them(tmp_path: Path) -> None:
    tree = tmp_path / "tree.yaml"
    tree.write_text(TREE)
    seen = []
    with StubServer(record=True) as server:
        settings = ModelSettings(backend="openai", base_url=server.base_url, model="m")
        for attempt, n in ((1, 24), (2, 24), (3, 30)):
            server.reset_stats()
            cache = tmp_path / f"cache{attempt}.sqlite"  # each run asks the server afresh
            out = tmp_path / f"run{attempt}"
            run_task(_diverse_qa(tree, n), settings, out, show_progress=False, cache=cache)
            bodies = sorted(json.dumps(b["messages"]) for b in server.bodies)
            draws = {
                r["id"]: (r["data"]["topic_path"], r["data"]["attributes"]) for r in _rows(out)
            }
            seen.append((draws, bodies))
    (first, bodies1), (second, bodies2), (grown, _) = seen
    assert first == second and bodies1 == bodies2  # the same prompts, so the same ids
    assert first.items() <= grown.items()  # raising n keeps every earlier unit's draw
    leaves = {tuple(p) for p, _ in first.values()}
    assert len(leaves) == len(TopicTree.load(tree).leaves())  # 24 units cover all 6 leaves


def _qa_answer(question: str) -> str:
    return json.dumps({"question": question, "answer": "Start a return in your account."})


def test_dedup_while_generating_reasks_a_planted_repeat(tmp_path: Path) -> None:
    n = 8
    first_asks = {call_seed(0, i, 0) for i in range(n)}  # each unit's first call

    def responder(body: dict[str, Any]) -> str:
        if body["seed"] in first_asks:  # the planted repeat: every unit's first answer
            return _qa_answer("How do I return a gift I bought online last week?")
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        words = " ".join(f"w{digest[i : i + 3]}" for i in range(0, 24, 3))
        return _qa_answer(f"Can you explain {words}?")

    with StubServer(responder=responder) as server:
        settings = ModelSettings(backend="openai", base_url=server.base_url, model="m")
        task = QATask(QAParams(topic="returns", n=n, max_similar=0.7))
        summary = run_task(task, settings, tmp_path / "run", show_progress=False)
        requests = server.stats.requests
        # a rerun: every call from the cache, the same records
        again = run_task(
            QATask(QAParams(topic="returns", n=n, max_similar=0.7)),
            settings,
            tmp_path / "run",
            show_progress=False,
        )
        assert server.stats.requests == requests
    assert requests == n + (n - 1)  # unit 0 keeps the question; each other unit asked twice
    assert summary.counters["units_reasked"] == n - 1 and summary.counters["reasks"] == n - 1
    records = _rows(tmp_path / "run")
    questions = [r["data"]["question"] for r in records]
    assert len(set(questions)) == n and all(r["status"] == "ok" for r in records)
    assert sum(q.startswith("How do I return a gift") for q in questions) == 1
    assert summary.spread is not None and summary.spread["units_reasked"] == n - 1
    assert summary.spread["reasked_share"] == round((n - 1) / n, 4)
    assert summary.spread["near_duplicate_rate"] == 0.0
    assert again.records_new == 0 and again.requests == 0


def test_a_repeat_left_after_the_budget_is_kept_flagged(tmp_path: Path) -> None:
    n, budget = 4, 2
    with StubServer(responder=lambda body: _qa_answer("Where is my refund for order 1234?")) as s:
        settings = ModelSettings(backend="openai", base_url=s.base_url, model="m")
        params = QAParams(topic="returns", n=n, max_similar=0.7, max_reasks=budget)
        summary = run_task(QATask(params), settings, tmp_path / "run", show_progress=False)
        assert s.stats.requests == 1 + (n - 1) * (1 + budget)
    records = _rows(tmp_path / "run")
    assert len(records) == n  # never silently dropped
    first = records[0]["id"]
    flagged = [r for r in records if r["status"] == "flagged"]
    assert len(flagged) == n - 1
    assert all(r["notes"]["near_duplicate_of"] == first for r in flagged)
    assert summary.counters["near_duplicates_flagged"] == n - 1


def _index_as_draws_do(index: NearIndex, texts: list[str]) -> tuple[list[Hit | None], list[int]]:
    """Each text queried, then added (as DiversityRun.generate does): the hits and the
    exact checks each query made."""
    hits, checks = [], []
    for i, text in enumerate(texts):
        before = index.checks
        hits.append(index.query(text))
        checks.append(index.checks - before)
        index.add(text, f"r{i}")
    return hits, checks


def test_near_index_checks_a_bounded_number_of_earlier_texts_per_question() -> None:
    """Questions filled into one template share the band keys whose minima fall on its fixed
    words: every earlier one was a candidate, checked on its true Jaccard (none is a near
    duplicate), so a run slowed down quadratically (8,000 questions: 873,410 checks, 109 a
    question, 4x as many per question as at 2,000). Each query now checks at most
    bands x bucket_size earlier texts, and the checks per question do not grow with the run."""
    small, big = NearIndex(0.7), NearIndex(0.7)
    questions = [f"How do I return item number {i} bought online?" for i in range(8_000)]
    hits, checks = _index_as_draws_do(small, questions[:2_000])
    assert hits == [None] * 2_000
    hits, checks = _index_as_draws_do(big, questions)
    assert hits == [None] * 8_000
    assert max(checks) <= big.bands * big.bucket_size
    assert 0 < big.checks / 8_000 <= 1.3 * small.checks / 2_000


def test_near_index_finds_planted_near_copies_among_templated_questions() -> None:
    """2,000 questions of one template (Jaccard 7/17 between any two; its band keys are
    shared by far more texts than a key remembers), then a copy of every tenth with its last
    word changed (Jaccard 11/13 to its original): each copy is found, pointing at its
    original however early it came; no original is called similar."""
    template = "How do I return item number {} that I bought online last week from your store?"
    originals = [template.format(i) for i in range(2_000)]
    copies = [originals[i].replace("store?", "shop?") for i in range(0, 2_000, 10)]
    index = NearIndex(0.7)
    hits, checks = _index_as_draws_do(index, originals + copies)
    assert hits[:2_000] == [None] * 2_000
    assert hits[2_000:] == [Hit(f"r{i}", pytest.approx(11 / 13)) for i in range(0, 2_000, 10)]
    assert max(checks) <= index.bands * index.bucket_size


def _shingle_set(text: str) -> set[tuple[str, ...]]:
    w = words(text)
    return {tuple(w[i : i + 5]) for i in range(len(w) - 4)} if len(w) >= 5 else {tuple(w)}


def test_near_index_hits_are_the_earliest_text_at_the_threshold() -> None:
    """Texts of no template, a third of them copies of an earlier one with 1-4 words changed
    (Jaccard 0.4-1, many at 0.6-0.75 to the text copied): a query's hit is the earliest added text whose true shingle
    Jaccard is >= the threshold, and nothing under the threshold is ever a hit."""
    rng = random.Random(5)
    vocab = [f"w{i}" for i in range(400)]
    texts: list[str] = []
    for _ in range(600):
        if texts and rng.random() < 0.35:
            copy = rng.choice(texts).split()
            for _ in range(rng.randint(1, 4)):
                copy[rng.randrange(len(copy))] = rng.choice(vocab)
            texts.append(" ".join(copy))
        else:
            texts.append(" ".join(rng.choice(vocab) for _ in range(rng.randint(40, 80))))
    hits, _ = _index_as_draws_do(NearIndex(0.7), texts)
    sets = [_shingle_set(t) for t in texts]
    expected: list[Hit | None] = []
    for i, mine in enumerate(sets):
        scores = (len(mine & sets[j]) / len(mine | sets[j]) for j in range(i))
        near = [(j, s) for j, s in enumerate(scores) if s >= 0.7]
        expected.append(Hit(f"r{near[0][0]}", pytest.approx(near[0][1])) if near else None)
    assert hits == expected
    assert 80 < sum(h is not None for h in hits) < 200  # near copies, and copies not near


def test_every_run_ends_with_a_spread_summary_in_the_manifest(tmp_path: Path) -> None:
    tree = tmp_path / "tree.yaml"
    tree.write_text(TREE)
    with StubServer() as server:
        settings = ModelSettings(backend="openai", base_url=server.base_url, model="m")
        run_task(
            _diverse_qa(tree, 12, max_similar=0.7), settings, tmp_path / "run", show_progress=False
        )
        plain = run_task(
            QATask(QAParams(topic="x", n=3)), settings, tmp_path / "plain", show_progress=False
        )
    spread = json.loads((tmp_path / "run" / "manifest.json").read_text())["summary"]["spread"]
    assert spread["texts"] == 12 and 0 < spread["distinct_2"] <= 1
    assert spread["near_duplicate_rate"] == 0.0
    assert spread["topics"] == {"covered": 6, "of": 6, "coverage": 1.0}
    assert spread["attributes"]["tone"] == {"covered": 2, "of": 2, "coverage": 1.0}
    assert spread["attributes"]["persona"]["of"] > 100
    assert spread["units_reasked"] == 0 and spread["reasked_share"] == 0.0
    # a run without the options: still its texts' spread, nothing about coverage
    assert plain.spread is not None and set(plain.spread) == {
        "texts", "sampled", "distinct_2", "near_duplicate_rate"
    }  # fmt: skip
    records = _rows(tmp_path / "run")
    for r in records:
        assert r["data"]["topic"] == r["data"]["topic_path"][-1]
        assert r["provenance"]["conditioning"]["attributes"] == r["data"]["attributes"]


def _spread_of(texts: list[str], sample: int, digest_every: int | None) -> dict[str, Any]:
    from synthloom.diversity.spread import Spread
    from synthloom.records import Record

    spread = Spread(lambda data: [data["q"]], sample=sample)
    for i, text in enumerate(texts):
        spread.observe(Record(id=f"r{i}", task="qa", data={"q": text}))
        if digest_every and i % digest_every == 0:
            spread.digest(limit=7)  # a few texts at a time, as the runner does while it waits
    summary = spread.summary({"units_ok": len(texts)})
    assert summary is not None
    return summary


@pytest.mark.parametrize("sample", [10_000, 150])  # 150: the reservoir replaces texts
def test_measuring_the_spread_while_the_run_waits_gives_the_same_numbers(sample: int) -> None:
    # the runner measures the summary's texts a part at a time during the run (issue 12);
    # the numbers must be those of measuring them all at the end, planted near-duplicates too
    words = "refund parcel label courier receipt store credit exchange warranty box".split()
    texts = [
        f"how do I {words[i % 10]} a {words[(i * 7) % 10]} after {i % 13} days and {words[i % 3]}"
        for i in range(400)
    ]
    texts += [t + " please" for t in texts[:60]]  # near copies of earlier texts
    at_the_end = _spread_of(texts, sample, None)
    assert at_the_end["near_duplicate_rate"] > 0.05 and 0 < at_the_end["distinct_2"] < 1
    assert _spread_of(texts, sample, 3) == at_the_end
    assert _spread_of(texts, sample, 50) == at_the_end


# -- without the options, nothing changes ------------------------------------------------

# Measured before the options existed (commit 7e519dd): each task's run identity and the
# sha256 of the sorted request bodies it sent to the stub for the same job.
PINNED = {
    "qa": ({"topic": "product returns", "n": 3}, "5da235ad1bb3a7a0071e11b59de68ca6362297690ac966cb3cd365f0d2480a05"),
    "audience": ({"topics": ["tides"], "audiences": ["a child"], "samples": 2}, "0c6009a8c2a2e9cdf70dae1392a313258f978a89c8b5d0962b2870f9fd0e58af"),
    "summarize": ({"input": "ARTICLES", "k": 2}, "5bd5c9663cca04be0d517295bb09f5e19b9d458f636813536dff9026502aa061"),
    "self-instruct": ({"num_instructions": 2, "batch": 1, "max_rounds": 1}, "80a8f54bb7d19b8767e24e605280f7ee650974435b001a1a483051c2d08994b6"),
}  # fmt: skip
PINNED_CONFIGS = {
    "qa": {"topic": "product returns", "from_docs": None, "chunk_size": 1500, "chunk_overlap": 200, "max_tokens": 384},
    "audience": {"topics": ["tides"], "instructions": None, "audiences": ["a child"], "personas": None, "length": None, "max_tokens": 384},
    "summarize": {"input": "ARTICLES", "text_column": "text", "id_column": None, "title_column": None, "k": 2, "lengths": ["three sentences"], "styles": ["neutral"], "max_chars": 6000, "max_tokens": 320},
    "self-instruct": {"seeds": None, "num_instructions": 2, "per_call": 8, "batch": 1, "max_rounds": 1, "classify": "model", "max_tokens": 512},
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(PINNED))
def test_without_the_options_identity_and_requests_are_byte_identical(
    name: str, tmp_path: Path
) -> None:
    """An old run directory resumes: its identity is the same, and the same calls are made
    (the request bodies, hence the cache keys and the record ids)."""
    articles = tmp_path / "arts.jsonl"
    articles.write_text(
        "".join(
            json.dumps({"text": f"Article {i} about tides and moons. It has two sentences here."})
            + "\n"
            for i in range(2)
        )
    )
    values, digest = PINNED[name]
    values = {k: str(articles) if v == "ARTICLES" else v for k, v in values.items()}
    cls = task_class(name)
    with StubServer(record=True) as server:
        settings = ModelSettings(backend="openai", base_url=server.base_url, model="m")
        task = cls(cls.Params.model_validate(values))
        identity = run_identity(task, task.models(settings))
        run_task(task, settings, tmp_path / "run", show_progress=False)
        bodies = sorted(json.dumps(b, sort_keys=True) for b in server.bodies)
    config = {k: str(articles) if v == "ARTICLES" else v for k, v in PINNED_CONFIGS[name].items()}
    assert identity["config"] == config
    assert hashlib.sha256("\n".join(bodies).encode()).hexdigest() == digest


def test_given_options_are_part_of_the_identity_and_an_edited_tree_is_another_job(
    tmp_path: Path,
) -> None:
    tree = tmp_path / "tree.yaml"
    tree.write_text(TREE)
    before = _diverse_qa(tree).config()
    assert before["topics"] == str(tree) and "persona" in before["samplers"]
    tree.write_text(TREE.replace("late fees", "late payments"))
    after = _diverse_qa(tree).config()
    assert before["diversity_inputs"]["topics"] != after["diversity_inputs"]["topics"]
    assert "topics" not in QATask(QAParams(topic="x")).config()


def test_a_draw_of_nothing_changes_no_prompt() -> None:
    run = DiversityRun(Diversity(QAParams(topic="x")), seed=0)
    draw = run.draw("topic:0", 0)
    assert draw.variables() == {} and draw.data() == {} and draw.conditioning() is None
    assert draw.sample(5) == 5


def _inputs(tmp_path: Path) -> dict[str, Path]:
    files = {
        "tree": (tmp_path / "tree.yaml", TREE),
        "labelled": (
            tmp_path / "labelled.jsonl",
            "".join(
                json.dumps({"text": f"I {w} this phone, the battery lasts {d} days", "label": lab})
                + "\n"
                for w, d, lab in [("love", 3, "pos"), ("hate", 1, "neg"), ("like", 2, "pos")]
            ),
        ),
        "articles": (
            tmp_path / "articles.jsonl",
            json.dumps({"text": "Tides rise twice a day. The moon pulls the sea. " * 4}) + "\n",
        ),
        "real": (
            tmp_path / "real.jsonl",
            "".join(
                json.dumps(
                    {
                        "instruction": f"Real instruction {i}: explain tides to a child.",
                        "summary": f"Real summary {i}.",
                        "response": f"Real answer {i}.",
                        "text": f"Real text {i} about a phone",
                        "label": "pos",
                    }
                )
                + "\n"
                for i in range(4)
            ),
        ),
    }
    for path, text in files.values():
        path.write_text(text)
    return {k: v[0] for k, v in files.items()}


OPTED_IN = {
    # task: (params, what of the draw its records keep)
    "self-instruct": (
        {"num_instructions": 2, "batch": 2, "max_rounds": 1, "topics": "TREE"},
        ("topic", "attributes"),
    ),
    "audience": ({"topics": "TREE", "audiences": ["a child"]}, ("topic", "attributes")),  # a tree
    "summarize": ({"input": "ARTICLES", "k": 2}, ("attributes",)),
    "augment": ({"input": "LABELLED", "per_example": 1, "fidelity": "none"}, ("attributes",)),
}


@pytest.mark.parametrize("name", sorted(OPTED_IN))
def test_every_task_that_takes_the_options_prompts_and_records_them(
    name: str, tmp_path: Path
) -> None:
    files = _inputs(tmp_path)
    values, kept = OPTED_IN[name]
    swap = {"TREE": files["tree"], "ARTICLES": files["articles"], "LABELLED": files["labelled"]}
    values = {k: str(swap[v]) if isinstance(v, str) and v in swap else v for k, v in values.items()}
    values |= {"samplers": {"register": "plain,formal"}, "examples": files["real"], "shots": 2}
    cls = task_class(name)
    scripted = self_instruct_responder if name == "self-instruct" else None
    with StubServer(record=True, responder=scripted) as server:
        settings = ModelSettings(backend="openai", base_url=server.base_url, model="m")
        task = cls(cls.Params.model_validate(values))
        summary = run_task(task, settings, tmp_path / "run", show_progress=False)
        prompts = [json.dumps(b["messages"]) for b in server.bodies]
    assert summary.units_ok > 0
    assert any("Register: plain" in p or "Register of the new tasks: plain" in p for p in prompts)
    assert any("Real " in p for p in prompts)  # the real examples are shown
    records = [r for r in _rows(tmp_path / "run") if r["origin"] == "synthetic"]
    assert records
    for r in records:
        for key in kept:
            assert key in r["data"], (name, key, r["data"])
        assert r["data"]["attributes"]["register"] in ("plain", "formal")
        assert len(r["provenance"]["conditioning"]["examples"]) == 2
        if "topic" in kept:
            assert r["data"]["topic_path"][-1] == r["data"]["topic"]
    assert summary.spread is not None and "attributes" in summary.spread


def test_a_sampled_persona_fills_the_audience_tasks_persona(tmp_path: Path) -> None:
    cls = task_class("audience")
    with pytest.raises(Exception, match="persona is both crossed"):
        cls.Params.model_validate({"topics": "tides", "personas": "a pirate", "samplers": {"persona": "x"}})  # fmt: skip
    params = cls.Params.model_validate(
        {"topics": "tides,volcanoes", "samplers": {"persona": "a pirate,a poet"}}
    )
    with StubServer(record=True) as server:
        settings = ModelSettings(backend="openai", base_url=server.base_url, model="m")
        run_task(cls(params), settings, tmp_path / "run", show_progress=False)
        systems = [b["messages"][0]["content"] for b in server.bodies]
    records = _rows(tmp_path / "run")
    assert len(records) == 2  # no default audiences crossed in: the persona is sampled
    for r in records:
        assert r["data"]["persona"] in ("a pirate", "a poet")
        assert r["data"]["persona"] == r["data"]["attributes"]["persona"]
    assert all(s.startswith(("You are a pirate.", "You are a poet.")) for s in systems)


def test_topics_never_overwrites_an_edited_tree(tmp_path: Path) -> None:
    tree_file = tmp_path / "tree.yaml"
    args = ["topics", "--root", "customer service", "--depth", "1", "--breadth", "3"]
    with StubServer(responder=_planted_topics) as server:
        model = ["--backend", "openai", "--base-url", server.base_url, "--model", "m"]
        first = synthloom(*args, "--out", str(tree_file), *model, cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        tree_file.write_text(tree_file.read_text().replace("Shipping", "Delivery"))  # an edit
        again = synthloom(*args, "--out", str(tree_file), *model, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "Delivery" in tree_file.read_text()  # the edit is kept
    assert "exists and differs from this tree" in again.stderr
    bad = synthloom(*args, "--out", str(tmp_path / "tree.txt"), *model, cwd=tmp_path)
    assert bad.returncode == 2 and "--out: " in bad.stderr and ".yaml" in bad.stderr
