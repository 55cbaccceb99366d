"""Self-Instruct (Wang et al. 2022): bootstrap new tasks from a few seed tasks.

Each round sends `batch` generation calls; each shows 8 example instructions (6 seeds and 2
earlier machine tasks when there are any; more seeds early on) and asks the model to continue
the numbered list. In call order, every candidate goes through the published filters (length,
blocked words, "Write a program", leading punctuation, non-ASCII, then ROUGE-L > 0.7 against
every earlier instruction, seeds included). Each kept instruction is classified, then the model
writes instances for it: the label first for classification tasks, the input first otherwise.
Instances go through their filters (cut off, empty output, input == output, output == the
instruction, an exact duplicate of an earlier instance of the task) and at most 5 are kept; a
task left without one is dropped (a failed unit). Every instruction or instance a rule
removes is counted and is a failures.jsonl line, cause `eliminated:<rule>` with the removed
text, keyed `<unit>#instruction:<n>` or `<unit>#instance:<n>`. No two tasks of a run share
an instruction (the ROUGE-L rule rejects a repeat, whatever its case or spacing), so no two
exported (instruction, input, output) rows of a run are the same. Rounds repeat until
`num_instructions` tasks are kept or `max_rounds` is reached (the shortfall is counted). Seeds
are not re-emitted.

With the diversity options (`synthloom.diversity`), each generation call draws a topic tree
leaf (`--topics`: the new tasks are about it), attributes (`--sample`) and k real
instructions (`--examples`, column instruction; they take k of the seed places in the list
and count for the ROUGE-L novelty rule like seeds); a kept task keeps its call's draw.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from synthloom import templates
from synthloom.diversity.draws import Diversity, Draw, annotate
from synthloom.diversity.options import ExamplesOption, SamplersOption, TopicsOption
from synthloom.errors import UserError
from synthloom.llm.engine import CallResult, Engine
from synthloom.quality.self_instruct_filters import (
    MAX_INSTANCES,
    SelfInstructFilter,
    is_classification,
    normalize_whitespace,
    parse_instances,
    parse_instruction_list,
    screen_instances,
)
from synthloom.records import Record, Turn
from synthloom.sources import read_inputs
from synthloom.tasks.base import Eliminated, RunContext, Task, Unit, clip

DEFAULT_SEEDS = Path(__file__).resolve().parent.parent / "data" / "seed_tasks.jsonl"
EXAMPLES = 8  # example instructions per generation prompt
MACHINE_EXAMPLES = 2  # of which machine-generated, once there are any
DEMOS = 2  # seed tasks shown as examples when generating instances
CLASSIFY_DEMOS = 3  # seeds of each kind shown when asking "is it classification?"


@dataclass(frozen=True)
class SeedTask:
    id: str
    instruction: str
    instances: tuple[tuple[str, str], ...]
    is_classification: bool


def load_seed_tasks(path: Path) -> list[SeedTask]:
    """Seed tasks from a Self-Instruct JSONL file (or a synthloom run), with file:line errors.

    Only "instruction" is required; "instances" defaults to none, "is_classification" to a
    keyword guess, "id" to the record id or `file:line`.
    """
    seeds = []
    for row in read_inputs(path, ["instruction"]):
        where, d = f"{row.path}:{row.line}", row.data
        if not isinstance(d["instruction"], str):
            raise UserError(f'{where}: "instruction" must be a string')
        instances = d.get("instances") or []
        if not isinstance(instances, list) or not all(
            isinstance(x, dict)
            and isinstance(x.get("output"), str)
            and isinstance(x.get("input", ""), str)
            for x in instances
        ):
            raise UserError(
                f'{where}: "instances" must be a list of {{"input": "...", "output": "..."}} objects'
            )
        flag = d.get("is_classification")
        if flag is not None and not isinstance(flag, bool):
            raise UserError(f'{where}: "is_classification" must be true or false')
        seeds.append(
            SeedTask(
                id=str(d.get("id") or row.record_id or f"{row.path.name}:{row.line}"),
                instruction=normalize_whitespace(d["instruction"]),
                instances=tuple((x.get("input", ""), x["output"]) for x in instances),
                is_classification=is_classification(d["instruction"], flag),
            )
        )
    return seeds


class Verdict(BaseModel):
    answer: Literal["yes", "no"]


class SelfInstructParams(TopicsOption, SamplersOption, ExamplesOption):
    model_config = ConfigDict(extra="forbid")

    seeds: Path | None = Field(
        None, description="seed tasks, JSONL in the Self-Instruct format (default: shipped set)"
    )
    num_instructions: int = Field(
        20, ge=1, description="new tasks to keep", json_schema_extra={"flags": ["-n"]}
    )
    per_call: int = Field(
        8,
        ge=1,
        le=50,
        description="new instructions asked for per call (Alpaca asks for 20; small models do"
        " better with few)",
    )
    batch: int = Field(4, ge=1, description="generation calls per round")
    max_rounds: int = Field(
        10,
        ge=1,
        description="stop after this many rounds even if fewer tasks were kept (the shortfall"
        " is reported)",
    )
    classify: Literal["model", "keywords"] = Field(
        "model",
        description="decide whether a task is classification by asking the model, or by keywords",
    )


@dataclass(frozen=True)
class _Prompt:
    """One generation call: its index in the round, its in-context examples (id, text) and
    its draw (topic leaf, attributes; synthloom.diversity)."""

    index: int
    examples: tuple[tuple[str, str], ...]
    draw: Draw = Draw()


@dataclass(frozen=True)
class _Candidate:
    instruction: str
    prompt: _Prompt
    generated: CallResult[Any]


class SelfInstructTask(Task):
    """New instruction-following tasks bootstrapped from seed tasks (Self-Instruct)."""

    name = "self-instruct"
    Params = SelfInstructParams
    sampling = {"max_tokens": 512}
    dependent_units = (
        "it works in rounds: each round's prompts show the tasks kept before, and each new"
        " instruction is checked against every earlier one"
    )

    @classmethod
    def spread_texts(cls, data: dict[str, Any]) -> list[str]:
        return [data["instruction"]]

    @staticmethod
    def turns(data: dict[str, Any]) -> list[Turn]:
        """One turn per kept instance; Alpaca keeps the instance's input apart."""
        return [
            Turn(data["instruction"], inst["output"], None, inst.get("input") or "")
            for inst in data.get("instances") or []
        ]

    def __init__(self, params: SelfInstructParams) -> None:
        self.params = params
        self.seeds = load_seed_tasks(params.seeds or DEFAULT_SEEDS)
        yes, no = (
            [s for s in self.seeds if s.is_classification == k][:CLASSIFY_DEMOS]
            for k in (True, False)
        )
        self.classify_demos = [s for pair in zip_longest(yes, no) for s in pair if s is not None]
        self.diversity = Diversity(params, example_columns=(("instruction",), ()))

    def total(self) -> int:
        return self.params.batch

    def _generate_sampling(self, n_examples: int) -> dict[str, Any]:
        end = n_examples + self.params.per_call + 1  # stop before the item after the last
        return {
            "temperature": 0.7,
            "max_tokens": self.sampling["max_tokens"],
            "stop": [f"\n{end}.", f"\n{end} ."],
        }

    async def execute(self, ctx: RunContext) -> None:
        p, engine = self.params, ctx.engine
        novelty = SelfInstructFilter()
        novelty.add_existing(s.instruction for s in self.seeds)
        novelty.add_existing(e.fields["instruction"] for e in self.diversity.examples)
        run = self.diversity.start(ctx)
        machine: list[tuple[str, str]] = []  # (record id, instruction) of kept tasks
        for rnd in range(1, p.max_rounds + 1):
            need = p.num_instructions - len(machine)
            if need <= 0:
                break
            ctx.count("rounds")
            rng = random.Random(f"{engine.seed}:{rnd}")
            prompts = []
            for j in range(p.batch):
                draw = run.draw(f"r{rnd}:g{j}", (rnd - 1) * p.batch + j)
                examples = self._examples(rng, machine, draw)
                prompts.append(Unit(f"r{rnd}:g{j}", _Prompt(j, examples, draw)))
            ctx.set_total(len(prompts), f"round {rnd}: instructions")
            answers = await ctx.gather(prompts, lambda u: self._generate(engine, u))
            accepted: list[Unit] = []
            for unit, answer in zip(prompts, answers, strict=True):
                if answer is None:
                    continue
                cut = answer.completion.finish_reason == "length"
                candidates = parse_instruction_list(answer.value, cut_off=cut)
                ctx.count("instructions_generated", len(candidates))
                for n, text in enumerate(candidates):
                    if len(accepted) >= need:
                        ctx.count("instructions_over_target")
                    elif reason := novelty.offer(text):
                        ctx.count(f"instructions_removed_{reason}")
                        ctx.fail(f"{unit.id}#instruction:{n}", f"eliminated:{reason}", text)
                    else:
                        candidate = _Candidate(novelty.kept[-1], unit.payload, answer)
                        accepted.append(Unit(f"r{rnd}:t{len(accepted)}", candidate))
            ctx.count("instructions_kept", len(accepted))
            ctx.set_total(len(accepted), f"round {rnd}: instances")
            made = await ctx.gather(accepted, lambda u: self._task(ctx, engine, u))
            for record in made:
                if record is None:  # a failed call, or no instance kept: a failed unit
                    continue
                ctx.emit(record)
                machine.append((record.id, record.data["instruction"]))
        if len(machine) < p.num_instructions:
            ctx.count("shortfall", p.num_instructions - len(machine))

    def _examples(
        self, rng: random.Random, machine: list[tuple[str, str]], draw: Draw
    ) -> tuple[tuple[str, str], ...]:
        chosen = rng.sample(machine, min(MACHINE_EXAMPLES, len(machine)))
        real = [(e.id, e.fields["instruction"]) for e in draw.examples]
        chosen += real[: EXAMPLES - len(chosen)]
        humans = [(s.id, s.instruction) for s in self.seeds]
        chosen += rng.sample(humans, min(EXAMPLES - len(chosen), len(humans)))
        rng.shuffle(chosen)
        return tuple(chosen)

    async def _generate(self, engine: Engine, unit: Unit) -> CallResult[Any]:
        prompt: _Prompt = unit.payload
        start = len(prompt.examples) + 1
        messages = templates.load("self_instruct_generate").messages(
            examples=[text for _, text in prompt.examples],
            n=self.params.per_call,
            start=start,
            end=start + self.params.per_call - 1,
            **prompt.draw.variables(examples=False),  # the examples are in the list
        )
        sampling = self._generate_sampling(len(prompt.examples))
        # A list cut off by max_tokens is usable: its last, unfinished task is dropped
        # (parse_instruction_list with cut_off), as in the published pipeline.
        return await engine.complete(
            messages, sample=prompt.index, accept_truncated=True, **sampling
        )

    async def _task(self, ctx: RunContext, engine: Engine, unit: Unit) -> Record:
        """The task's record; raises Eliminated when no instance passes the rules."""
        c: _Candidate = unit.payload
        results: list[CallResult[Any]] = [c.generated]
        if self.params.classify == "model":
            verdict = await engine.complete(
                templates.load("self_instruct_classify").messages(
                    demos=self.classify_demos, instruction=c.instruction
                ),
                schema=Verdict,
                temperature=0.0,
                max_tokens=32,
            )
            results.append(verdict)
            is_cls = verdict.value.answer == "yes"
        else:
            is_cls = is_classification(c.instruction)
        name = f"self_instruct_instances_{'output' if is_cls else 'input'}_first"
        rng = random.Random(f"{engine.seed}:{unit.id}")
        pool = [s for s in self.seeds if s.instances and s.is_classification == is_cls]
        answer = await engine.complete(
            templates.load(name).messages(
                demos=rng.sample(pool, min(DEMOS, len(pool))),
                instruction=c.instruction,
                limit=MAX_INSTANCES,
            ),
            temperature=0.2,
            max_tokens=self.sampling["max_tokens"],
            stop=[f"Example {MAX_INSTANCES + 1}", "\nTask:"],
            accept_truncated=True,  # filter_instances drops the cut-off last instance
        )
        results.append(answer)
        instances, rejected = screen_instances(
            parse_instances(answer.value, output_first=is_cls),
            answer.completion.finish_reason,
            instruction=c.instruction,
        )
        for r in rejected:
            ctx.count(f"instances_removed_{r.reason}")
            ctx.fail(
                f"{unit.id}#instance:{r.index}",
                f"eliminated:{r.reason}",
                r.output,
                input=clip(r.input),
                instruction=clip(c.instruction),
            )
        ctx.count("instances_kept", len(instances))
        if not instances:
            ctx.count("tasks_dropped_no_instances")
            raise Eliminated("no_instances", c.instruction)
        data = {
            "instruction": c.instruction,
            "instances": [{"input": i, "output": o} for i, o in instances],
            "is_classification": is_cls,
        }
        record = self.record(
            (unit.id, c.instruction, answer.key),
            data,
            engine=engine,
            template=templates.load("self_instruct_generate"),
            results=results,
            parents=tuple(id_ for id_, _ in c.prompt.examples),
            notes={"instance_template": name, "classified_by": self.params.classify},
            **self._generate_sampling(len(c.prompt.examples)),
        )
        return annotate(record, c.prompt.draw)
