"""What one unit is asked with (`Draw`: its topic leaf, attributes and real examples), and
dedup while generating (`DiversityRun.generate`).

A task that opted into the options (`synthloom.diversity.options`) builds a `Diversity` from
its params in `__init__` (files are read and checked there: a mistake fails before any call)
and, in `execute`, `run = self.diversity.start(ctx)`. For each unit:

    record = await run.generate(ctx, unit.id, order, make, text_of)

`make(draw)` asks the model with the draw's template variables (`draw.variables()`, nothing
when no option is given, so the prompt is byte for byte the one without the options) and
sample index (`draw.sample(i)`), and returns the record; `generate` adds the draw to the
record (data.topic, data.topic_path, data.attributes; provenance.conditioning) and, with
`max_similar`, checks the text (`text_of(record)`) against what the run made before:

- a near-duplicate is asked again with a new draw (attempt 1, 2, ...: new attributes, new
  examples, another sample index) up to `max_reasks` times; each re-ask is counted
  (`reasks`, and `units_reasked` once per unit); one still a near-duplicate after that is
  kept, flagged (`notes.near_duplicate_of`, `near_duplicates_flagged`), never dropped;
- the check runs in unit order (`order` 0, 1, 2, ... over the units, with no gaps): a unit
  waits for the units before it to be settled, so whether a unit is re-asked never depends
  on which call finished first, and a rerun or a resumed run (its answers from the cache)
  writes the same records. Calls still run concurrently; only the checks are in order.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from synthloom.diversity.samplers import Samplers, unit_rng

if TYPE_CHECKING:
    from synthloom.diversity.examples import Example, Rotation
    from synthloom.diversity.spread import Spread
    from synthloom.diversity.tree import Leaf, Spreader, TopicTree
    from synthloom.records import Record

# The topic tree and the examples (their modules, pydantic models and dataclasses) are
# imported when an option asks for them: a run without --topics/--examples, the common case,
# starts without them (issue 12).

REASK_STRIDE = 1_000_003  # a re-ask's sample index: i + attempt * this (never another unit's)


class Context(Protocol):
    """What `generate` needs of the task's RunContext."""

    spread: Spread | None

    @property
    def engine(self) -> Any: ...

    def count(self, name: str, n: int = 1) -> None: ...


@dataclass(frozen=True)
class Draw:
    leaf: Leaf | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    examples: tuple[Example, ...] = ()
    attempt: int = 0

    def variables(self, *, examples: bool = True) -> dict[str, Any]:
        """The template variables of this draw; none for a draw of nothing."""
        out: dict[str, Any] = {}
        if self.leaf is not None:
            out["topic"] = self.leaf.topic
            out["topic_path"] = list(self.leaf.path)
        if self.attributes:
            out["attributes"] = dict(self.attributes)
        if self.examples and examples:
            from synthloom.diversity.examples import shown

            out["examples"] = shown(self.examples, range(len(self.examples)))
        return out

    def sample(self, base: int) -> int:
        """The sample index of this attempt at unit sample `base`."""
        return base + self.attempt * REASK_STRIDE

    def data(self) -> dict[str, Any]:
        """What a record keeps of its draw, in its data."""
        out: dict[str, Any] = {}
        if self.leaf is not None:
            out["topic"] = self.leaf.topic
            out["topic_path"] = list(self.leaf.path)
        if self.attributes:
            out["attributes"] = dict(self.attributes)
        return out

    def conditioning(self) -> dict[str, Any] | None:
        """What a record keeps of its draw, in its provenance (None for a draw of nothing)."""
        out: dict[str, Any] = {}
        if self.leaf is not None:
            out["topic_path"] = list(self.leaf.path)
        if self.attributes:
            out["attributes"] = dict(self.attributes)
        if self.examples:
            out["examples"] = [e.id for e in self.examples]
        if out and self.attempt:
            out["attempt"] = self.attempt
        return out or None


NOTHING = Draw()  # the draw of a run without diversity options


class Diversity:
    """A task's diversity options, loaded and checked (see the module docstring)."""

    def __init__(
        self,
        params: Any,
        *,
        example_columns: tuple[Sequence[str], Sequence[str]] = ((), ()),
        tree: Path | None | bool = True,
        spread_units: bool = True,
    ) -> None:
        """`tree`: the topic tree's file (True: params.topics). With `spread_units` the units
        are spread over its leaves (each draw carries one); without, the task makes its units
        from the leaves itself (audience: one subject per leaf) and the tree only counts for
        the run's identity and the spread summary's coverage."""
        self.tree: TopicTree | None = None
        self.leaves: list[Leaf] = []
        path = getattr(params, "topics", None) if tree is True else tree or None
        if path is not None:
            from synthloom.diversity.tree import TopicTree

            self.tree = TopicTree.load(Path(path), "`topics`")
            self.leaves = self.tree.leaves()
        self.spread_units = spread_units
        specs = getattr(params, "samplers", None) or {}
        self.samplers = Samplers(specs)
        self.examples: list[Example] = []
        self._examples_hash = ""
        examples = getattr(params, "examples", None)
        if examples is not None:
            from synthloom.diversity.examples import load_examples

            required, optional = example_columns
            self.examples, self._examples_hash = load_examples(
                examples, required, optional, "`examples`"
            )
        self.shots = int(getattr(params, "shots", 3))
        self.max_similar: float | None = getattr(params, "max_similar", None)
        self.max_reasks = int(getattr(params, "max_reasks", 3))

    @property
    def active(self) -> bool:
        return bool(self.tree or self.samplers or self.examples or self.max_similar)

    def identity(self) -> dict[str, Any]:
        """What the files behind the options hold (a tree's leaves, the values of sampler
        files, the examples), so an edited file makes another job; empty without them."""
        parts: dict[str, Any] = {}
        if self.tree is not None:
            parts["topics"] = self.tree.digest()
        if self.samplers:
            universes = {
                n: u.values or [u.low, u.high] for n, u in self.samplers.universes().items()
            }
            blob = json.dumps(universes, sort_keys=True, ensure_ascii=False, default=str)
            parts["samplers"] = hashlib.sha256(blob.encode()).hexdigest()[:16]
        if self.examples:
            parts["examples"] = self._examples_hash
        return {"diversity_inputs": parts} if parts else {}

    def start(self, ctx: Context) -> DiversityRun:
        """This run's draws, seeded by the run seed; tells the spread summary what coverage
        is measured against."""
        seed = ctx.engine.seed
        spread = getattr(ctx, "spread", None)
        if spread is not None and (self.leaves or self.samplers):
            leaves = [leaf.path for leaf in self.leaves] if self.leaves else None
            spread.expect(leaves, self.samplers.universes() if self.samplers else {})
        if self.max_similar:
            ctx.count("units_reasked", 0)  # in the summary, zero included
        return DiversityRun(self, seed)


class DiversityRun:
    def __init__(self, diversity: Diversity, seed: int | None) -> None:
        self.d = diversity
        self.seed = seed
        self.spreader: Spreader | None = None
        if diversity.leaves and diversity.spread_units:
            from synthloom.diversity.tree import Spreader

            self.spreader = Spreader([x.weight for x in diversity.leaves])
        self.rotation: Rotation | None = None
        if diversity.examples:
            from synthloom.diversity.examples import Rotation

            self.rotation = Rotation(len(diversity.examples), diversity.shots, seed)
        self.index = None
        if diversity.max_similar:
            from synthloom.diversity.index import NearIndex  # numpy: only when asked for

            self.index = NearIndex(diversity.max_similar)
        self._settled: dict[int, asyncio.Event] = {}

    def draw(self, key: str, order: int, attempt: int = 0) -> Draw:
        """Unit `key` (its id; `order` its place among the units)'s draw at `attempt`. The topic
        leaf stays the unit's across attempts; attributes and examples are drawn anew."""
        d = self.d
        leaf = d.leaves[self.spreader.leaf(order)] if self.spreader is not None else None
        attributes = (
            d.samplers.draw(unit_rng(self.seed, key, attempt, "samplers")) if d.samplers else {}
        )
        examples: tuple[Example, ...] = ()
        if self.rotation is not None:
            picked = (
                self.rotation.shots(order) if attempt == 0 else self.rotation.extra(key, attempt)
            )
            examples = tuple(d.examples[i] for i in picked)
        return Draw(leaf, attributes, examples, attempt)

    async def generate(
        self,
        ctx: Context,
        key: str,
        order: int,
        make: Callable[[Draw], Awaitable[Record]],
        text_of: Callable[[Record], str],
    ) -> Record:
        """The unit's record, made by `make` with its draw (see the module docstring)."""
        if not self.d.active:
            return await make(NOTHING)
        draw = self.draw(key, order)
        if self.index is None:
            return annotate(await make(draw), draw)
        settled = False
        try:
            record = await make(draw)
            await self._turn(order)
            settled = True
            hit = self.index.query(text_of(record))
            while hit is not None and draw.attempt < self.d.max_reasks:
                ctx.count("reasks")
                if draw.attempt == 0:
                    ctx.count("units_reasked")
                draw = self.draw(key, order, draw.attempt + 1)
                record = await make(draw)
                hit = self.index.query(text_of(record))
            if hit is not None:
                record.status = "flagged"
                record.notes["near_duplicate_of"] = hit.id
                record.notes["similarity"] = round(hit.jaccard, 3)
                ctx.count("near_duplicates_flagged")
            self.index.add(text_of(record), record.id)
            return annotate(record, draw)
        except Exception:
            if not settled:  # a failed unit is settled in its turn too
                await self._turn(order)
            raise
        finally:
            self._event(order).set()

    def _event(self, order: int) -> asyncio.Event:
        event = self._settled.get(order)
        if event is None:
            event = self._settled[order] = asyncio.Event()
        return event

    async def _turn(self, order: int) -> None:
        """Wait until every unit before `order` is settled."""
        if order > 0:
            await self._event(order - 1).wait()
            self._settled.pop(order - 1, None)


def annotate(record: Record, draw: Draw) -> Record:
    """`record` with its draw in its data and provenance (unchanged for a draw of nothing)."""
    extra = draw.data()
    if extra:
        record.data.update(extra)
    conditioning = draw.conditioning()
    if conditioning is not None and record.provenance is not None:
        record.provenance = replace(record.provenance, conditioning=conditioning)
    return record
