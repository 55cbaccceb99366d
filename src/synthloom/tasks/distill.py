"""Distillation: a teacher model answers prompts from a file; optionally a student model
answers the same prompts so the gap between them can be inspected.

Roles: "teacher" (always) and "student" (when `student` is set). The student answers each
prompt once (sample 0) and that answer is compared with every teacher sample. A student call
that fails never loses the teacher's answer: the record is kept, flagged, with
`notes.student_error`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from synthloom import templates
from synthloom.errors import BackendFatal, UserError
from synthloom.llm.engine import CallFailed, CallResult
from synthloom.quality.rouge import rouge_l_f1
from synthloom.records import Record, Turn, stable_id
from synthloom.sources import InputRow, Inputs
from synthloom.tasks.base import RunContext, Task, Unit, provenance


class DistillParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: Path = Field(..., description="prompts: a .jsonl/.csv file or a previous run directory")
    prompt_column: str = Field("prompt", description="the column holding the prompt")
    system: str | None = Field(None, description="system prompt given to teacher and student")
    samples: int = Field(
        1, ge=1, description="teacher responses per prompt", json_schema_extra={"flags": ["-n"]}
    )
    student: bool = Field(
        False,
        description="also ask the student model every prompt (implied by any --student-* option)",
    )


def gap(teacher: str, student: str) -> dict[str, Any]:
    """Lexical distance between the two answers: ROUGE-L F1 and the length ratio."""
    t, s = len(teacher.split()), len(student.split())
    return {
        "rouge_l_f1": round(rouge_l_f1(teacher, student), 4),
        "length_ratio": round(s / t, 4) if t else None,
        "teacher_words": t,
        "student_words": s,
    }


class DistillTask(Task):
    """A teacher model answers prompts from a file; a student model optionally answers them
    too, so the gap can be inspected. The model options configure the teacher."""

    name = "distill"
    Params = DistillParams
    roles = ("teacher",)
    optional_roles = {"student": "the model being compared with the teacher"}
    sampling = {"max_tokens": 512}
    growable = ("samples",)  # raising --samples on a run adds answers; the first are kept
    independent_units = True  # each prompt and sample on its own (the Ray executor's actors)
    resume_by_unit = True  # a rerun skips finished prompts: no call, no record rebuilt

    def __init__(self, params: DistillParams) -> None:
        self.params = params
        # checked in full now, then read again as the units are made: constant memory
        self.rows = Inputs(params.input, [params.prompt_column], check=self._check_row)

    def _check_row(self, row: InputRow) -> None:
        if not isinstance(row.data[self.params.prompt_column], str):
            raise UserError(
                f"{row.path}:{row.line}: column {self.params.prompt_column!r} is not text;"
                " choose the prompt column with --prompt-column"
            )

    def engine_roles(self) -> tuple[str, ...]:
        return ("teacher", "student") if self.params.student else ("teacher",)

    def unused_role_hint(self, role: str) -> str:
        return "set `student: true` in params" if role == "student" else ""

    @staticmethod
    def turns(data: dict[str, Any]) -> list[Turn]:
        return [Turn(data["prompt"], data["response"], data.get("system"))]

    def units(self) -> Iterator[Unit]:
        """One unit per prompt and sample, made as the run takes them (the input is streamed)."""
        for row in self.rows:
            for i in range(self.params.samples):
                yield Unit(f"{row.record_id or f'line{row.line}'}:{i}", (row, i))

    def total(self) -> int:
        return len(self.rows) * self.params.samples

    async def execute(self, ctx: RunContext) -> None:
        await ctx.for_each(self.units(), lambda unit: self._distill(ctx, unit))

    async def _distill(self, ctx: RunContext, unit: Unit) -> list[Record]:
        row: InputRow = unit.payload[0]
        sample: int = unit.payload[1]
        prompt = row.data[self.params.prompt_column].strip()
        template = templates.load("distill")
        messages = template.messages(prompt=prompt, system=self.params.system)
        teacher = ctx.engines["teacher"]
        result = await teacher.complete(messages, sample=sample, **self.sampling)
        data: dict[str, Any] = {
            "prompt": prompt,
            "response": result.value,
            "sample": sample,
            "teacher_model": teacher.backend.model,
            "source": {"file": str(row.path), "line": row.line},
        }
        if self.params.system:
            data["system"] = self.params.system
        notes: dict[str, Any] = {}
        status = "ok"
        student_result: CallResult[Any] | None = None
        if self.params.student:
            student = ctx.engines["student"]
            data["student_model"] = student.backend.model
            try:
                student_result = await student.complete(messages, sample=0, **self.sampling)
            except (CallFailed, BackendFatal) as exc:
                status, notes["student_error"] = "flagged", str(exc)[:300]
                data["student_response"] = data["gap"] = None
                ctx.count("student_failed")
            else:
                data["student_response"] = student_result.value
                data["gap"] = gap(result.value, student_result.value)
                notes["student_provenance"] = provenance(
                    student, template, [student_result], **self.sampling
                ).to_dict()
                # a rerun after a failed student call: point at the flagged record it replaces
                flagged = stable_id(self.name, unit.id, result.key, None)
                if flagged in ctx.existing:
                    notes["supersedes"] = flagged
        parents = (row.record_id,) if row.record_id else ()
        record = self.record(
            (unit.id, result.key, student_result and student_result.key),
            data,
            engine=teacher,
            template=template,
            results=[result],
            parents=parents,
            notes=notes,
            status=status,
            **self.sampling,
        )
        return [record]
