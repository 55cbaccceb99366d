"""Topic trees: a root topic expanded into subtopics, level by level, by the model.

Each node of the tree up to `depth - 1` levels below the root is one unit: the model lists
`breadth` subtopics of it (structured output), given the node's path from the root. Every
name is cleaned (list marks, quotes, end punctuation), and dropped when it is a near copy of
a topic on the node's own path; a name that is a near copy of an earlier sibling (characters
or words, `near_copy_score` >= `merge_similar`) is merged into that sibling (kept in the
tree as `merged`). A node with fewer than `breadth` distinct subtopics is asked again, up to
MORE_ROUNDS times, showing the ones it has; a node left with none is a failed unit (a leaf in
the tree). Each node's answer is a record (data: path, subtopics, merged), so a rerun resumes
from the cache; the tree is written at the end, as `tree.yaml` in the run directory and to
`out` (a YAML file people can edit; see `synthloom.diversity.tree`). Any generating task
takes the tree as `--topics FILE` (or the run directory).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from synthloom import templates
from synthloom.diversity.tree import TREE_FILE, Node, TopicTree
from synthloom.errors import UserError
from synthloom.llm import structured
from synthloom.llm.engine import CallResult
from synthloom.outputs import write_atomic
from synthloom.quality.dedup import near_copy_score, normalize
from synthloom.records import Record
from synthloom.tasks.base import Eliminated, RunContext, Task, Unit

MORE_ROUNDS = 2  # extra calls for a node left with fewer than `breadth` distinct subtopics
NAME_CHARS = 80  # longest subtopic name kept
_MARK = re.compile(r"^\s*(?:[-*\u2022]+|\d+[.)]|[a-z][.)])\s+", re.I)


class TopicsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    root: str = Field(..., min_length=1, description='the root topic, e.g. "customer service"')
    depth: int = Field(2, ge=1, le=4, description="levels of subtopics below the root")
    breadth: int = Field(8, ge=2, le=30, description="subtopics of each topic")
    merge_similar: float = Field(
        0.8,
        gt=0,
        le=1,
        description="siblings at least this similar (characters or words) are merged into the"
        " first",
    )
    out: Path | None = Field(
        None,
        description="the tree file to write (.yaml); the tree is also tree.yaml in the run"
        " directory (runs/topics-<hash>)",
    )

    @field_validator("out")
    @classmethod
    def _yaml(cls, out: Path | None) -> Path | None:
        if out is not None and out.suffix.lower() not in (".yaml", ".yml"):
            raise ValueError(f"{out}: give a .yaml file name")
        return out


def clean_name(text: str) -> str:
    """A subtopic name without list marks, wrapping quotes, end punctuation or underscores
    between its words (small models write identifiers: Return_Policy)."""
    name = _MARK.sub("", " ".join(str(text).replace("_", " ").split()))
    name = name.strip().strip("\"'`").strip().rstrip(".:;,").strip()
    return name[:NAME_CHARS].strip()


class TopicsTask(Task):
    """A topic tree: a root topic expanded into subtopics level by level (near-duplicate
    siblings merged), written as a YAML file to edit and to give any generating task as
    --topics FILE."""

    name = "topics"
    Params = TopicsParams
    sampling: dict[str, Any] = {"max_tokens": None}  # from breadth
    dependent_units = "it builds the tree level by level, each from the topics of the one before"

    def __init__(self, params: TopicsParams) -> None:
        super().__init__(params)
        self.sampling = {"max_tokens": 64 + 24 * params.breadth}
        self.schema = structured.schema(
            "Subtopics",
            subtopics=(
                list[Annotated[str, StringConstraints(min_length=1, max_length=NAME_CHARS)]],
                Field(min_length=1, max_length=2 * params.breadth, description="subtopic names"),
            ),
        )
        if params.out is not None:
            if params.out.is_dir():
                raise UserError(f"out {params.out}: is a directory; give a .yaml file name")

    @classmethod
    def spread_texts(cls, data: dict[str, Any]) -> list[str]:
        return [str(x) for x in data.get("subtopics") or []]

    def total(self) -> int:
        b = self.params.breadth
        return sum(b**level for level in range(self.params.depth))

    async def execute(self, ctx: RunContext) -> None:
        p = self.params
        root = Node(p.root.strip())
        level = [((root.topic,), root)]
        for depth in range(1, p.depth + 1):
            units = [Unit(" > ".join(path), (path, node)) for path, node in level]
            ctx.set_total(len(units), f"level {depth}")
            await ctx.for_each(units, lambda unit: self._expand(ctx, unit))
            level = [((*path, c.topic), c) for path, node in level for c in node.subtopics]
        tree = TopicTree(root)
        leaves = tree.leaves()
        ctx.count("topics", tree.count_nodes() - 1)
        ctx.count("leaves", len(leaves))
        text = tree.dump()
        ctx.write_artifact(TREE_FILE, text)
        self.written: Path | None = None
        if p.out is not None:
            if p.out.exists() and p.out.read_text(encoding="utf-8") != text:
                ctx.warn(
                    f"{p.out} exists and differs from this tree (edited by hand?): left as it"
                    f" is; the tree is in {ctx.run.path / TREE_FILE}"
                )
            else:
                write_atomic(p.out, text)
                self.written = p.out
        self.tree_file = self.written or ctx.run.path / TREE_FILE
        self.leaf_count = len(leaves)

    async def _expand(self, ctx: RunContext, unit: Unit) -> list[Record]:
        path: tuple[str, ...] = unit.payload[0]
        node: Node = unit.payload[1]
        p, engine = self.params, ctx.engine
        template = templates.load("topics")
        kept: list[str] = []
        merged: dict[str, list[str]] = {}
        results: list[CallResult[Any]] = []
        for attempt in range(1 + MORE_ROUNDS):
            need = p.breadth - len(kept)
            messages = template.messages(path=list(path), n=need, existing=kept)
            result = await engine.complete(
                messages, schema=self.schema, sample=attempt, **self.sampling
            )
            results.append(result)
            for raw in result.value.subtopics:
                self._offer(ctx, clean_name(raw), path, kept, merged)
                if len(kept) >= p.breadth:
                    break
            if len(kept) >= p.breadth:
                break
            ctx.count("topics_asked_again")
        if not kept:
            raise Eliminated("no_subtopics", " | ".join(map(str, results[-1].value.subtopics)))
        node.subtopics = [Node(name, merged=merged.get(name, [])) for name in kept]
        data = {
            "path": list(path),
            "subtopics": kept,
            "merged": {k: v for k, v in merged.items() if v},
            "depth": len(path),
        }
        return [
            self.record(
                (unit.id, *(r.key for r in results)),
                data,
                engine=engine,
                template=template,
                results=results,
                **self.sampling,
            )
        ]

    def _offer(
        self,
        ctx: RunContext,
        name: str,
        path: tuple[str, ...],
        kept: list[str],
        merged: dict[str, list[str]],
    ) -> None:
        """Keep `name` as a new subtopic, merge it into a near-duplicate sibling, or drop it
        (empty, or a near copy of a topic on its own path)."""
        threshold = self.params.merge_similar
        if not normalize(name):
            ctx.count("subtopics_dropped_empty")
            return
        if any(near_copy_score(name, up) >= threshold for up in path):
            ctx.count("subtopics_dropped_parent_copy")
            return
        for sibling in kept:
            if near_copy_score(name, sibling) >= threshold:
                if normalize(name) != normalize(sibling) and name not in merged[sibling]:
                    merged[sibling].append(name)
                ctx.count("subtopics_merged")
                return
        kept.append(name)
        merged[name] = []

    def after_cli(self, summary: Any) -> None:
        import click

        from synthloom.terminal import visible

        tree_file = getattr(self, "tree_file", None)
        if tree_file is not None:
            click.echo(
                visible(
                    f"topic tree: {self.leaf_count} leaves in {tree_file}; edit it, then give"
                    f" it to a task: --topics {tree_file}"
                ),
                err=True,
            )
