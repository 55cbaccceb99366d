"""Distributed near-dup dedup (issue 17): on a local Ray instance, the same duplicates, of
the same texts, with the same Jaccard scores, as the local `NearDedup`."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

import numpy as np
import pytest

pytest.importorskip("ray.data")

from synthloom.quality.dedup import NearDedup  # noqa: E402
from synthloom.quality.dedup_ray import RayNearDedup, candidate_components  # noqa: E402
from tests.ray_support import ray_local  # noqa: E402, F401

pytestmark = pytest.mark.ray


def _planted(seed: int = 7) -> tuple[list[str], list[str]]:
    """Texts with planted near duplicates: copies with 1 to 4 words changed (some over the
    threshold, some under), exact copies, chains (a copy of a copy), short texts, and copies
    of reference texts; shuffled."""
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(3000)]

    def text() -> str:
        return " ".join(rng.choices(vocab, k=rng.randint(25, 60)))

    def edit(t: str, changes: int) -> str:
        words = t.split()
        for _ in range(changes):
            words[rng.randrange(len(words))] = rng.choice(vocab)
        return " ".join(words)

    reference = [text() for _ in range(20)]
    texts = [text() for _ in range(400)]
    for base in rng.sample(texts, 120):
        copy = edit(base, rng.randint(1, 4))
        texts.append(copy)
        if rng.random() < 0.3:
            texts.append(edit(copy, 1))  # a chain
        if rng.random() < 0.2:
            texts.append(base)  # exact
    texts += [edit(r, rng.randint(0, 2)) for r in reference[:10]]
    texts += ["short text", "short text", "tiny"]
    rng.shuffle(texts)
    return texts, reference


def _clusters(matches: list[Any]) -> set[frozenset[tuple[bool, int]]]:
    groups: dict[tuple[bool, int], set[tuple[bool, int]]] = defaultdict(set)
    for i, m in enumerate(matches):
        if m is not None:
            head = (m.reference, m.index)
            groups[head] |= {head, (False, i)}
    return {frozenset(g) for g in groups.values()}


@pytest.mark.usefixtures("ray_local")
def test_same_clusters_as_local() -> None:
    texts, reference = _planted()
    local = NearDedup().find(texts, reference)
    found = RayNearDedup(partitions=4).find(texts, reference)
    assert sum(m is not None for m in local) > 80  # the planted set has duplicates to find
    assert any(m is not None and m.reference for m in local)
    assert found == local  # the same verdict for every text, scores included
    assert _clusters(found) == _clusters(local)


@pytest.mark.usefixtures("ray_local")
def test_templated_texts_same_as_local() -> None:
    """Texts of one template share band keys past what a key remembers (NearDedup checks a
    text against a key's first kept texts only): on Ray, which verifies whole components in
    order, the same verdicts; the planted copies (last word changed) are all found."""
    rng = random.Random(3)
    template = "How do I return item number {} that I bought online last week from your store?"
    texts = [template.format(i) for i in range(1_500)]
    texts += [texts[i].replace("store?", "shop?") for i in rng.sample(range(1_500), 100)]
    rng.shuffle(texts)
    local = NearDedup().find(texts)
    assert sum(m is not None for m in local) == 100
    assert RayNearDedup(partitions=4).find(texts) == local


@pytest.mark.usefixtures("ray_local")
def test_no_duplicates_no_candidates() -> None:
    texts = [
        f"unique text number {i} " + " ".join(f"x{i}_{j}" for j in range(10)) for i in range(50)
    ]
    finder = RayNearDedup(partitions=2)
    assert finder.find(texts) == [None] * 50
    assert finder.stats["candidates"] == 0


def test_union_find_of_candidate_edges() -> None:
    nodes, labels = candidate_components(np.array([1, 3, 7, 20]), np.array([3, 5, 9, 7]))
    comp = dict(zip(nodes.tolist(), labels.tolist(), strict=True))
    assert comp[1] == comp[3] == comp[5]
    assert comp[7] == comp[9] == comp[20] != comp[1]
    # random edges: the same groups as a plain union-find; a long chain is one group
    rng = random.Random(1)
    a = np.array([rng.randrange(3000) for _ in range(2000)])
    b = np.array([rng.randrange(3000) for _ in range(2000)])
    parent: dict[int, int] = {}

    def root(x: int) -> int:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for x, y in zip(a.tolist(), b.tolist(), strict=True):
        parent[root(x)] = root(y)
    nodes, labels = candidate_components(a, b)
    mine, theirs = defaultdict(set), defaultdict(set)
    for node, label in zip(nodes.tolist(), labels.tolist(), strict=True):
        mine[label].add(node)
        theirs[root(node)].add(node)
    assert sorted(map(sorted, mine.values())) == sorted(map(sorted, theirs.values()))
    chain = np.arange(5000)
    assert candidate_components(chain, chain + 1)[1].max() == 0
