"""The spread summary of a run: how varied its output is, shown at the end of every run and
kept in the manifest (`summary.spread`).

    texts                 generated texts seen (a task's `spread_texts`: qa's questions, ...)
    sampled               how many of them the two measures below were computed on
    distinct_2            unique / total word bigrams (`quality.metrics.distinct_n`)
    near_duplicate_rate   share of texts `synthloom dedup` would remove (NearDedup, 0.7 on
                          word 5-grams: `quality.metrics.near_duplicate_rate`)
    topics                with --topics: leaves with at least one record, of all leaves
    attributes            with --sample: per sampler, values (or bins of a range) drawn in the
                          records, of all it can give
    units_reasked         with --max-similar: units whose answer was asked again, and their
                          share of all units (`reasked_share`)

The collector sees each record as the run writes it (RunContext.emit), so a huge run is never
read back from disk: the texts are a uniform sample of at most SAMPLE (reservoir sampling,
seeded), so distinct-2 and the near-duplicate rate of a run above SAMPLE texts are estimates
from that sample (the near-duplicate rate of a sample is lower than of the whole: a text's
earlier copy may not be in it). Topic and attribute coverage count every record (memory:
one counter per leaf and per value). A task that resumes by unit (`Task.resume_by_unit`)
skips the units an earlier run finished without making their records again: a rerun's spread
then covers only the records it made (`texts` says how many).

While the run waits for answers the runner calls `digest`, which measures the texts kept so
far (their words and shingles: the costly part), so that the end of a run of up to SAMPLE
texts has little left to do (issue 12); the numbers are those of measuring at the end. Past
SAMPLE texts the reservoir replaces texts already measured: the final sample is measured at
the end.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from synthloom.diversity.samplers import Universe
from synthloom.records import Record

SAMPLE = 10_000

TextsOf = Callable[[dict[str, Any]], list[str]]


class Spread:
    def __init__(self, texts_of: TextsOf | None = None, sample: int = SAMPLE, seed: int = 0):
        self.texts_of = texts_of
        self.size = sample
        self.sample: list[str] = []
        self.seen = 0
        self._rng = random.Random(f"spread:{seed}")
        self.leaves: set[tuple[str, ...]] | None = None
        self.leaf_counts: Counter[tuple[str, ...]] = Counter()
        self.universes: dict[str, Universe] = {}
        self.values: dict[str, Counter[str]] = {}
        # the texts of `sample` measured so far (`digest`): distinct-2 and near-duplicate
        # accumulators and how many texts they hold (used while no text was replaced)
        self._measures: tuple[Any, Any] | None = None
        self._measured = 0

    def expect(
        self, leaves: list[tuple[str, ...]] | None, universes: Mapping[str, Universe]
    ) -> None:
        """What coverage is measured against: the tree's leaves, each sampler's values."""
        if leaves is not None:
            self.leaves = set(leaves)
        self.universes.update(universes)
        for name in universes:
            self.values.setdefault(name, Counter())

    def observe(self, record: Record) -> None:
        """A record the run writes (a human record passed through is not counted)."""
        if record.origin != "synthetic":
            return
        data = record.data
        if self.texts_of is not None:
            try:
                texts = self.texts_of(data)
            except (KeyError, TypeError, IndexError, AttributeError):
                texts = []
            for text in texts:
                self._keep(text)
        if self.leaves is not None:
            path = data.get("topic_path")
            if isinstance(path, list):
                self.leaf_counts[tuple(path)] += 1
        attributes = data.get("attributes")
        if isinstance(attributes, dict):
            for name, universe in self.universes.items():
                if name in attributes:
                    cell = universe.cell(attributes[name])
                    if cell is not None:
                        self.values[name][cell] += 1

    def _keep(self, text: str) -> None:
        if not isinstance(text, str) or not text.strip():
            return
        self.seen += 1
        if len(self.sample) < self.size:
            self.sample.append(text)
        else:
            j = self._rng.randrange(self.seen)
            if j < self.size:
                self.sample[j] = text

    @property
    def _digestible(self) -> bool:
        """No text of the sample was replaced: what `digest` measured is still in it."""
        return self.seen <= self.size

    def digest(self, limit: int = 512) -> None:
        """Measure up to `limit` texts kept since the last call (for the end of the run:
        `summary` then only measures what is left). Needs numpy and rensa imported: the runner
        calls it once they are."""
        if not self._digestible or self._measured >= len(self.sample):
            return
        if self._measures is None:
            from synthloom.quality.metrics import DistinctN, NearDuplicateRate

            self._measures = (DistinctN(2), NearDuplicateRate())
        part = self.sample[self._measured : self._measured + limit]
        for measure in self._measures:
            measure.add(part)
        self._measured += len(part)

    def summary(self, counters: Mapping[str, int]) -> dict[str, Any] | None:
        """The run's spread (None when it wrote no generated text and used no diversity
        option)."""
        units = counters.get("units_ok", 0) + counters.get("units_failed", 0)
        reasked = counters.get("units_reasked", 0)
        if not self.seen and self.leaves is None and not self.universes and not reasked:
            return None
        out: dict[str, Any] = {"texts": self.seen, "sampled": len(self.sample)}
        if self.sample:
            if self._digestible:
                self.digest(len(self.sample))
                assert self._measures is not None
                distinct, near = (m.value for m in self._measures)
            else:
                from synthloom.quality.metrics import distinct_n, near_duplicate_rate

                distinct, near = distinct_n(self.sample, 2), near_duplicate_rate(self.sample)
            out["distinct_2"] = round(distinct, 4)
            out["near_duplicate_rate"] = round(near, 4)
        if self.leaves is not None:
            covered = sum(1 for leaf in self.leaves if self.leaf_counts.get(leaf))
            out["topics"] = _coverage(covered, len(self.leaves))
        if self.universes:
            out["attributes"] = {
                name: _coverage(
                    sum(1 for cell in self.values[name] if _in(universe, cell)), universe.size
                )
                for name, universe in self.universes.items()
            }
        if "units_reasked" in counters or reasked:
            out["units_reasked"] = reasked
            out["reasked_share"] = round(reasked / units, 4) if units else 0.0
        return out


def _in(universe: Universe, cell: str) -> bool:
    return cell in universe.values if universe.values else True


def _coverage(covered: int, total: int) -> dict[str, Any]:
    return {
        "covered": covered,
        "of": total,
        "coverage": round(covered / total, 4) if total else 0.0,
    }


def describe(spread: Mapping[str, Any]) -> str:
    """One line for the run's summary table."""
    parts = []
    if "distinct_2" in spread:
        of = (
            f"{spread['sampled']:,} of {spread['texts']:,}"
            if spread["sampled"] < spread["texts"]
            else f"{spread['texts']:,}"
        )
        parts.append(
            f"distinct-2 {spread['distinct_2']:.3f}, near-duplicates"
            f" {spread['near_duplicate_rate']:.1%} (of {of} texts)"
        )
    if "topics" in spread:
        t = spread["topics"]
        parts.append(f"topic leaves {t['covered']}/{t['of']}")
    for name, c in (spread.get("attributes") or {}).items():
        parts.append(f"{name} {c['covered']}/{c['of']}")
    if "units_reasked" in spread:
        parts.append(f"re-asked {spread['units_reasked']} units ({spread['reasked_share']:.1%})")
    return "; ".join(parts) or "no generated text"
