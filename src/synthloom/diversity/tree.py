"""Topic trees: a root topic, its subtopics, theirs, ... in a YAML file people can edit.

    root: customer service
    subtopics:
      - topic: billing
        weight: 2                # optional: every leaf under it gets twice the share
        merged: [billing issues] # near-duplicate names folded into this one (for reading)
        subtopics: [refunds, late fees, payment methods]
      - shipping                 # a leaf can be just its name

`synthloom topics` writes one (a model lists subtopics level by level, near-duplicate siblings
merged); any generating task takes it as `--topics FILE` (or a topics run directory, which
holds `tree.yaml`) and spreads its units over the leaves (topics without subtopics).

Spreading: a leaf's weight is the product of the weights on its path (default 1). Unit i goes
to the leaf a Sainte-Lague (highest averages) apportionment gives the i-th seat: every prefix
of the units is spread as close to the weights as whole units allow (within one unit of each
leaf's share), so raising N keeps the earlier units' leaves. Equal weights give round robin
over the leaves in interleaved order (the first leaf of every branch, then the second, ...),
so even a small N covers every branch before it repeats one.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from array import array
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from synthloom.errors import UserError
from synthloom.validation import first_error

TREE_FILE = "tree.yaml"  # a topics run directory's tree
HEADER = """\
# A topic tree for synthloom (`--topics FILE`): edit it freely. Units are spread over the
# leaves (topics without subtopics): evenly, or by `weight` (it multiplies the share of every
# leaf under it; default 1). `merged` lists near-duplicate names folded into a topic.
"""


@dataclass
class Node:
    topic: str
    subtopics: list[Node] = field(default_factory=list)
    weight: float | None = None
    merged: list[str] = field(default_factory=list)

    def to_yaml(self) -> Any:
        if not self.subtopics and self.weight is None and not self.merged:
            return self.topic
        out: dict[str, Any] = {"topic": self.topic}
        if self.weight is not None:
            out["weight"] = self.weight
        if self.merged:
            out["merged"] = list(self.merged)
        if self.subtopics:
            out["subtopics"] = [c.to_yaml() for c in self.subtopics]
        return out


@dataclass(frozen=True)
class Leaf:
    path: tuple[str, ...]  # root first, the leaf's own topic last
    weight: float = 1.0

    @property
    def topic(self) -> str:
        return self.path[-1]


class _NodeModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    topic: str = Field(min_length=1)
    weight: float | None = Field(None, gt=0, allow_inf_nan=False)
    merged: list[str] = Field(default_factory=list)
    subtopics: list[_NodeModel | str] = Field(default_factory=list)

    @field_validator("topic")
    @classmethod
    def _name(cls, topic: str) -> str:
        if not topic.strip():
            raise ValueError("empty topic")
        return topic.strip()


class _TreeModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    root: str = Field(min_length=1)
    weight: float | None = Field(None, gt=0, allow_inf_nan=False)
    subtopics: list[_NodeModel | str] = Field(default_factory=list)


@dataclass
class TopicTree:
    root: Node

    # -- reading and writing -------------------------------------------------------------
    @classmethod
    def load(cls, path: Path, where: str = "topics") -> TopicTree:
        """A tree file, or a topics run directory's `tree.yaml`; errors name file, line, key."""
        import yaml

        file = path / TREE_FILE if path.is_dir() else path
        if not file.is_file():
            hint = " (a topics run directory holds tree.yaml)" if path.is_dir() else ""
            raise UserError(f"{where}: {file}: not found{hint}; make one with synthloom topics")
        try:
            text = file.read_text(encoding="utf-8")
            data = yaml.safe_load(text)
            root = yaml.compose(text)
        except UnicodeDecodeError:
            raise UserError(f"{file}: not UTF-8 text; save it as UTF-8") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or "not valid YAML"
            raise UserError(f"{file}{line}: {problem}") from None
        if not isinstance(data, dict):
            raise UserError(f"{file}: a topic tree is a mapping with `root:` and `subtopics:`")
        try:
            model = _TreeModel.model_validate(data)
        except ValidationError as exc:
            loc, msg = first_error(exc)
            loc = tuple(x for x in loc if x not in ("_NodeModel", "str"))
            line = _line(root, loc)
            key = _key(loc)
            raise UserError(f"{file}{f':{line}' if line else ''}: {key}: {msg}") from None
        node = Node(model.root.strip(), _nodes(model.subtopics, file, root, ("subtopics",)))
        node.weight = model.weight
        return cls(node)

    def dump(self) -> str:
        """The tree as the YAML text `load` reads (with a header saying how to edit it)."""
        import yaml

        data: dict[str, Any] = {"root": self.root.topic}
        if self.root.weight is not None:
            data["weight"] = self.root.weight
        if self.root.subtopics:
            data["subtopics"] = [c.to_yaml() for c in self.root.subtopics]
        body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
        return HEADER + body

    def digest(self) -> str:
        """A hash of what the tree spreads units over (leaves and weights): part of a run's
        identity, so an edited tree is another job."""
        blob = json.dumps([[list(x.path), x.weight] for x in self.leaves()], ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    # -- leaves --------------------------------------------------------------------------
    def leaves(self) -> list[Leaf]:
        """Every leaf with its path and weight, interleaved across branches."""

        def walk(node: Node, path: tuple[str, ...], weight: float) -> list[Leaf]:
            weight *= node.weight if node.weight is not None else 1.0
            if not node.subtopics:
                return [Leaf(path, weight)]
            groups = [walk(c, (*path, c.topic), weight) for c in node.subtopics]
            return [x for row in zip_longest(*groups) for x in row if x is not None]

        return walk(self.root, (self.root.topic,), 1.0)

    def count_nodes(self) -> int:
        def count(node: Node) -> int:
            return 1 + sum(count(c) for c in node.subtopics)

        return count(self.root)


def _nodes(
    items: list[_NodeModel | str], file: Path, root: Any, loc: tuple[Any, ...]
) -> list[Node]:
    nodes: list[Node] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        if isinstance(item, str):
            if not item.strip():
                line = _line(root, (*loc, i))
                raise UserError(f"{file}:{line}: {_key((*loc, i))}: empty topic")
            node = Node(item.strip())
        else:
            node = Node(
                item.topic,
                _nodes(item.subtopics, file, root, (*loc, i, "subtopics")),
                item.weight,
                [m.strip() for m in item.merged if m.strip()],
            )
        key = node.topic.casefold()
        if key in seen:
            line = _line(root, (*loc, i))
            raise UserError(
                f"{file}:{line}: {_key((*loc, i))}: {node.topic!r} is already a subtopic here"
                f" ({_key((*loc, seen[key]))}); merge the two or rename one"
            )
        seen[key] = i
        nodes.append(node)
    return nodes


def _key(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line(node: Any, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the YAML node at `loc` (or of its nearest existing parent)."""
    import yaml

    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if k.value == key), None)
            if nxt is None:
                keynode = next((k for k, _ in node.value if k.value == key), None)
                return keynode.start_mark.line + 1 if keynode is not None else line
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
        line = node.start_mark.line + 1
    return line


class Spreader:
    """Which leaf unit i goes to (see the module docstring): computed in unit order once and
    kept (two bytes a unit for up to 65,536 leaves), so any unit can ask in any order."""

    def __init__(self, weights: list[float]) -> None:
        if not weights:
            raise ValueError("no leaves")
        self.weights = weights
        self._heap = [(-w, i, 0) for i, w in enumerate(weights)]  # (-priority, leaf, seats)
        heapq.heapify(self._heap)
        self._seats = array("H" if len(weights) <= 1 << 16 else "I")

    def leaf(self, i: int) -> int:
        while len(self._seats) <= i:
            _, leaf, seats = heapq.heappop(self._heap)
            self._seats.append(leaf)
            seats += 1
            heapq.heappush(self._heap, (-self.weights[leaf] / (2 * seats + 1), leaf, seats))
        return self._seats[i]
