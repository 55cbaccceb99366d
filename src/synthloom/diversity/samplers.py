"""Attribute samplers: each unit of a run draws named attributes (a tone, a persona, a
difficulty, a length), so that N prompts differ in what they ask for and not only in their seed.

A sampler is one of:

    categorical   values, uniform or weighted           tone: [formal, casual]
                                                         level: {values: {easy: 3, hard: 1}}
    range         a number between two bounds            words: {range: [20, 80]}
                  (integers if both bounds are; floats are rounded to one decimal more than
                  the bounds show)
    values from   one value per line of a file           persona: {personas: true,
    files         (`#` lines skipped), and/or the                  file: my_personas.txt}
                  shipped persona list (`personas: true`)
    conditional   another sampler's value picks the      detail: {when: level, cases:
                  sampler (`*` or `default:` otherwise)    {easy: [short], hard: [long]}}

On the command line the same, one `--sample NAME=SPEC` each (a recipe step's `samplers:` also
takes these strings):

    tone=formal,casual            level=easy:3,hard:1        words=20..80
    persona=@personas             persona=@personas,@mine.txt
    detail=level{easy: short,simple; hard: long:2,technical; *: medium}

A value with a comma in it needs the recipe's list form. Every unit draws from its own
random generator, seeded by the run seed, the unit's id and the attempt, so a rerun (or a
resumed run, or a run with a larger N) draws the same attributes for the same units whatever
order they finish in.
"""

from __future__ import annotations

import bisect
import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from synthloom.errors import UserError

SHIPPED_PERSONAS = Path(__file__).resolve().parent.parent / "data" / "personas.txt"
_RANGE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*\.\.\s*(-?\d+(?:\.\d+)?)\s*$")
_CONDITIONAL = re.compile(r"^\s*([A-Za-z_][\w-]*)\s*\{(.*)\}\s*$", re.S)
_WEIGHT = re.compile(r"^(.*?):\s*(\d+(?:\.\d+)?)\s*$", re.S)
NUMERIC_BINS = 10  # coverage of a range: the share of its ten equal bins drawn at least once


class SamplerSpec(BaseModel):
    """One sampler as a recipe writes it (or as `parse_spec` reads the command line's text)."""

    model_config = ConfigDict(extra="forbid")

    values: list[str] | dict[str, float] | None = Field(
        None, description="categorical values: a list (uniform) or value -> weight"
    )
    range: tuple[int, int] | tuple[float, float] | None = Field(
        None, description="[low, high]: a number drawn uniformly between them"
    )
    personas: bool = Field(False, description="add the shipped persona list to the values")
    file: Path | list[Path] | None = Field(None, description="file(s) of values, one per line")
    when: str | None = Field(None, description="the attribute whose value picks the case")
    cases: dict[str, SamplerSpec] | None = Field(None, description="value of `when` -> sampler")
    default: SamplerSpec | None = Field(None, description="the sampler for any other value")

    @model_validator(mode="before")
    @classmethod
    def _short_forms(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_spec(value)
        if isinstance(value, list):
            return {"values": [str(v) for v in value]}
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> SamplerSpec:
        kinds = [
            k
            for k, given in (
                ("values/personas/file", self.values is not None or self.personas or self.file),
                ("range", self.range is not None),
                ("when", self.when is not None or self.cases is not None),
            )
            if given
        ]
        if len(kinds) != 1:
            raise ValueError(
                "give one kind of sampler: values (with or without personas/file), range, or"
                f" when with cases (got {', '.join(kinds) or 'none'})"
            )
        if isinstance(self.values, list) and not [v for v in self.values if v.strip()]:
            raise ValueError("values is empty")
        if isinstance(self.values, dict):
            if not self.values:
                raise ValueError("values is empty")
            bad = [k for k, w in self.values.items() if not (w >= 0 and math.isfinite(w))]
            if bad or not sum(self.values.values()) > 0:
                raise ValueError("weights must be numbers >= 0, at least one above 0")
        if self.range is not None and not self.range[0] <= self.range[1]:
            raise ValueError(f"range [{self.range[0]}, {self.range[1]}]: low is above high")
        if self.when is not None and not self.cases:
            raise ValueError(f"when: {self.when} needs cases (value -> sampler)")
        if self.cases is not None and self.when is None:
            raise ValueError("cases need `when: <attribute>`")
        if self.default is not None and self.when is None:
            raise ValueError("default is only for a sampler with `when:`")
        return self


def parse_spec(text: str) -> dict[str, Any]:
    """The command line's SPEC (see the module docstring) as a SamplerSpec's fields."""
    text = text.strip()
    if not text:
        raise ValueError("empty sampler")
    if m := _CONDITIONAL.match(text):
        cases: dict[str, Any] = {}
        default = None
        for part in m.group(2).split(";"):
            if not part.strip():
                continue
            key, sep, spec = part.partition(":")
            if not sep or not key.strip() or not spec.strip():
                raise ValueError(f"case {part.strip()!r}: expected VALUE: SPEC")
            if key.strip() == "*":
                default = spec.strip()
            else:
                cases[key.strip()] = spec.strip()
        return {"when": m.group(1), "cases": cases, "default": default}
    if m := _RANGE.match(text):
        low, high = m.group(1), m.group(2)
        if "." in low or "." in high:
            return {"range": (float(low), float(high))}
        return {"range": (int(low), int(high))}
    values: dict[str, float] = {}
    files: list[Path] = []
    personas = False
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if item == "@personas":
            personas = True
        elif item.startswith("@"):
            files.append(Path(item[1:]))
        elif m := _WEIGHT.match(item):
            values[m.group(1).strip()] = values.get(m.group(1).strip(), 0.0) + float(m.group(2))
        else:
            values[item] = values.get(item, 0.0) + 1.0
    spec: dict[str, Any] = {}
    if values:
        spec["values"] = values
    if personas:
        spec["personas"] = True
    if files:
        spec["file"] = files
    return spec


# -- the samplers a run draws from --------------------------------------------------------


class Sampler:
    """A built sampler: `draw(rng, drawn)` (drawn: the attributes drawn so far), and the
    values it can give for coverage (`universe`)."""

    depends_on: str | None = None

    def draw(self, rng: random.Random, drawn: Mapping[str, Any]) -> Any:
        raise NotImplementedError

    def universe(self) -> Universe:
        raise NotImplementedError


@dataclass(frozen=True)
class Universe:
    """What a sampler can give: a list of values, or a numeric range counted in bins."""

    values: tuple[str, ...] = ()
    low: float = 0.0
    high: float = 0.0
    integer: bool = False

    @property
    def numeric(self) -> bool:
        return not self.values

    @property
    def per_value(self) -> bool:
        """A short integer range is counted value by value, anything else in bins."""
        return self.integer and self.high - self.low + 1 <= NUMERIC_BINS * 2

    @property
    def size(self) -> int:
        if self.values:
            return len(self.values)
        return int(self.high - self.low) + 1 if self.per_value else NUMERIC_BINS

    def cell(self, value: Any) -> str | None:
        """The value or bin `value` counts for (None if it is not one of the sampler's)."""
        if self.values:
            return str(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if self.per_value:
            return str(int(value))
        share = (float(value) - self.low) / (self.high - self.low) if self.high > self.low else 0
        return str(min(NUMERIC_BINS - 1, max(0, int(share * NUMERIC_BINS))))


class Categorical(Sampler):
    def __init__(self, values: list[str], weights: list[float]) -> None:
        self.values = values
        self.total = 0.0
        self.cumulative: list[float] = []
        for w in weights:
            self.total += w
            self.cumulative.append(self.total)

    def draw(self, rng: random.Random, drawn: Mapping[str, Any]) -> Any:
        i = bisect.bisect_right(self.cumulative, rng.random() * self.total)
        return self.values[min(i, len(self.values) - 1)]

    def universe(self) -> Universe:
        return Universe(tuple(v for v, c in zip(self.values, self._weights(), strict=True) if c))

    def _weights(self) -> list[float]:
        return [b - a for a, b in zip([0.0, *self.cumulative], self.cumulative, strict=False)]


class NumberRange(Sampler):
    def __init__(self, low: float, high: float, integer: bool, decimals: int) -> None:
        self.low, self.high, self.integer, self.decimals = low, high, integer, decimals

    def draw(self, rng: random.Random, drawn: Mapping[str, Any]) -> Any:
        if self.integer:
            return rng.randint(int(self.low), int(self.high))
        return round(rng.uniform(self.low, self.high), self.decimals)

    def universe(self) -> Universe:
        return Universe((), self.low, self.high, self.integer)


class Conditional(Sampler):
    def __init__(self, on: str, cases: dict[str, Sampler], default: Sampler | None) -> None:
        self.depends_on, self.cases, self.default = on, cases, default

    def draw(self, rng: random.Random, drawn: Mapping[str, Any]) -> Any:
        assert self.depends_on is not None
        case = self.cases.get(str(drawn[self.depends_on]), self.default)
        assert case is not None  # every value has a case or there is a default (checked)
        return case.draw(rng, drawn)

    def universe(self) -> Universe:
        parts = [*self.cases.values(), *([self.default] if self.default else [])]
        universes = [p.universe() for p in parts]
        if all(not u.numeric for u in universes):
            values = dict.fromkeys(v for u in universes for v in u.values)
            return Universe(tuple(values))
        numeric = [u for u in universes if u.numeric]
        return Universe(
            (),
            min(u.low for u in numeric),
            max(u.high for u in numeric),
            all(u.integer for u in numeric),
        )


def _decimals(*bounds: float) -> int:
    shown = [len(repr(float(b)).split(".")[1].rstrip("0")) for b in bounds]
    return max(1, *shown) + 1


def _read_values(path: Path, where: str) -> list[str]:
    from synthloom.sources import read_text  # only for a file of values: not on start-up

    if not path.is_file():
        raise UserError(f"{where}: {path}: file not found; give a file with one value per line")
    lines = [line.strip() for line in read_text(path).splitlines()]
    values = [line for line in lines if line and not line.startswith("#")]
    if not values:
        raise UserError(f"{where}: {path}: no values (one per line; # starts a comment)")
    return values


def build_sampler(spec: SamplerSpec, where: str) -> Sampler:
    """The sampler `spec` describes; files are read here (a UserError names `where`)."""
    if spec.range is not None:
        low, high = spec.range
        integer = isinstance(low, int) and isinstance(high, int)
        return NumberRange(low, high, integer, 0 if integer else _decimals(low, high))
    if spec.when is not None:
        cases = {k: build_sampler(s, f"{where} (case {k})") for k, s in (spec.cases or {}).items()}
        default = build_sampler(spec.default, f"{where} (default)") if spec.default else None
        return Conditional(spec.when, cases, default)
    weights: dict[str, float] = {}
    if isinstance(spec.values, dict):
        weights.update({k.strip(): w for k, w in spec.values.items() if k.strip()})
    elif spec.values is not None:
        weights.update({v.strip(): 1.0 for v in spec.values if v.strip()})
    files = [] if spec.file is None else spec.file if isinstance(spec.file, list) else [spec.file]
    sources = ([SHIPPED_PERSONAS] if spec.personas else []) + files
    for path in sources:
        for value in _read_values(path, where):
            weights.setdefault(value, 1.0)
    return Categorical(list(weights), list(weights.values()))


class Samplers:
    """The samplers of a run, drawn in an order that puts each `when:` after its attribute."""

    def __init__(self, specs: Mapping[str, SamplerSpec], where: str = "`samplers`") -> None:
        self.names = list(specs)
        self.samplers = {name: build_sampler(s, f"{where} {name}") for name, s in specs.items()}
        self.order = self._order(where)
        for name, sampler in self.samplers.items():
            if isinstance(sampler, Conditional):
                self._check_cases(name, sampler, where)

    def _order(self, where: str) -> list[str]:
        order: list[str] = []
        state: dict[str, int] = {}

        def visit(name: str, chain: list[str]) -> None:
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                loop = " -> ".join([*chain[chain.index(name) :], name])
                raise UserError(f"{where} {name}: `when:` goes round in a loop ({loop})")
            state[name] = 1
            on = self.samplers[name].depends_on
            if on is not None:
                if on not in self.samplers:
                    known = ", ".join(self.names)
                    raise UserError(
                        f"{where} {name}: when: {on} names no sampler (samplers: {known})"
                    )
                visit(on, [*chain, name])
            state[name] = 2
            order.append(name)

        for name in self.names:
            visit(name, [])
        return order

    def _check_cases(self, name: str, sampler: Conditional, where: str) -> None:
        if sampler.default is not None:
            return
        assert sampler.depends_on is not None
        universe = self.samplers[sampler.depends_on].universe()
        if universe.numeric:
            raise UserError(
                f"{where} {name}: when: {sampler.depends_on} is a number range; give a"
                " default (`*: SPEC`) for the values without a case"
            )
        missing = [v for v in universe.values if v not in sampler.cases]
        if missing:
            raise UserError(
                f"{where} {name}: no case for {sampler.depends_on} = {', '.join(missing)};"
                " add those cases or a default (`*: SPEC`)"
            )

    def draw(self, rng: random.Random) -> dict[str, Any]:
        """One unit's attributes, in the order the samplers were given."""
        drawn: dict[str, Any] = {}
        for name in self.order:
            drawn[name] = self.samplers[name].draw(rng, drawn)
        return {name: drawn[name] for name in self.names}

    def universes(self) -> dict[str, Universe]:
        return {name: s.universe() for name, s in self.samplers.items()}

    def __bool__(self) -> bool:
        return bool(self.samplers)


def unit_rng(seed: int | None, key: str, attempt: int, what: str) -> random.Random:
    """The random generator of one unit's draw: the same for the same run seed, unit and
    attempt (string seeds are hashed with SHA-512: stable across processes and versions)."""
    return random.Random(f"{seed or 0}:{what}:{key}:{attempt}")
