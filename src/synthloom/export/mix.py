"""Mix real and synthetic training rows to a synthetic share, by training phase.

How much synthetic data a training set tolerates depends on the phase; the presets below
are where `mix` warns (a judgement drawn from the literature, not a law: set your own with
`warn_above`):

    pretrain  0.10  a model pre-trained on much generated text learns its generator's
                    patterns and loses the tails of the real distribution (Shumailov et al.,
                    Nature 2024, "AI models collapse when trained on recursively generated
                    data"); keeping real data alongside avoids the collapse (Gerstgrasser et
                    al. 2024)
    sft       0.90  instruction data is mostly synthetic in practice (Alpaca, UltraChat);
                    keep some human-written examples as an anchor for style and facts
    rlhf      0.50  model-judged preferences carry the judge's biases (position, length,
                    its own style): keep at least as many human judgements

Rows are dataset rows of one format (the columns of both files must match). Each output row
gets `origin` ("real" or "synthetic") and `provenance` (file, row, and, where the input has
a synthloom ids side file `<file>.ids.jsonl`, the record id, task, model and template). A
row's origin is what its ids file says (a synthloom export of records people wrote is real),
else the side it was given on. With `share`, the side in excess is sampled down (seeded) so
the output's synthetic share is `share` to within one row; with `cap`, synthetic rows are
sampled down only if their share is above it.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from synthloom.errors import UserError
from synthloom.export.trl import sidecar_path

Phase = Literal["pretrain", "sft", "rlhf"]


@dataclass(frozen=True)
class PhasePreset:
    tolerated: float  # the synthetic share above which mix warns
    why: str


PHASES: dict[str, PhasePreset] = {
    "pretrain": PhasePreset(
        0.10,
        "pre-training on much generated text teaches a model its generator's patterns and"
        " loses the tails of real data (model collapse, Shumailov et al. 2024)",
    ),
    "sft": PhasePreset(
        0.90,
        "keep some human-written examples as an anchor for style and facts",
    ),
    "rlhf": PhasePreset(
        0.50,
        "model-judged preferences carry the judge's biases (position, length, its own style)",
    ),
}


@dataclass
class Mixed:
    rows: list[dict[str, Any]]
    groups: list[str]
    counts: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a .jsonl or .parquet dataset file; errors name file:line."""
    if not path.is_file():
        raise UserError(f"{path}: not found; give a .jsonl or .parquet dataset file")
    if path.suffix.lower() == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise UserError("reading Parquet needs pyarrow: pip install 'synthloom[hf]'") from None
        return list(pq.read_table(path).to_pylist())
    if path.suffix.lower() != ".jsonl":
        raise UserError(f"{path}: give a .jsonl or .parquet dataset file")
    rows = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                raise UserError(f"{path}:{i}: not a JSON object") from None
            if not isinstance(row, dict):
                raise UserError(f"{path}:{i}: not a JSON object")
            rows.append(row)
    return rows


def _ids(path: Path, n: int) -> list[dict[str, Any]] | None:
    side = sidecar_path(path)
    if not side.is_file():
        return None
    ids = read_rows(side)
    if len(ids) != n:
        raise UserError(f"{side}: {len(ids)} rows for the {n} rows of {path}; export it again")
    return ids


def _tagged(path: Path, side: str) -> list[tuple[str, dict[str, Any], dict[str, Any], str]]:
    """(origin, row, provenance, split group) for each row of one input."""
    rows = read_rows(path)
    if not rows:
        raise UserError(f"{path}: no rows")
    ids = _ids(path, len(rows))
    out = []
    for i, row in enumerate(rows):
        if "origin" in row or "provenance" in row:
            raise UserError(
                f"{path}: row {i + 1} already has an `origin`/`provenance` column (a mix?);"
                " give the files it was made from"
            )
        meta = ids[i] if ids is not None else {}
        origin = side
        if meta.get("origin") in ("human", "real"):
            origin = "real"
        elif meta.get("origin") == "synthetic":
            origin = "synthetic"
        provenance = {
            "file": str(path),
            "row": i,
            "record_id": meta.get("record_id"),
            "task": meta.get("task"),
            "model": meta.get("model"),
            "template": meta.get("template"),
        }
        group = f"{path}#{meta['group']}" if meta.get("group") else f"{path}#{i}"
        out.append((origin, row, provenance, group))
    return out


def targets(real: int, synthetic: int, share: float | None, cap: float | None) -> tuple[int, int]:
    """How many real and synthetic rows to keep."""
    if share is not None:
        if share >= 1:
            return 0, synthetic
        if share <= 0:
            return real, 0
        if synthetic == 0 or real == 0:
            side = "synthetic" if synthetic == 0 else "real"
            raise UserError(f"--share {share:g}: there are no {side} rows to mix")
        if synthetic / (real + synthetic) > share:  # keep every real row
            return real, min(synthetic, round(share * real / (1 - share)))
        return min(real, round(synthetic * (1 - share) / share)), synthetic
    if cap is not None and real + synthetic and synthetic / (real + synthetic) > cap:
        if cap >= 1:
            return real, synthetic
        return real, min(synthetic, int(cap * real / (1 - cap)))
    return real, synthetic


def mix_rows(
    real: Path,
    synthetic: Path,
    *,
    phase: str,
    share: float | None = None,
    cap: float | None = None,
    warn_above: float | None = None,
    seed: int = 0,
) -> Mixed:
    """Real and synthetic rows mixed (see the module docstring), shuffled with `seed`."""
    if share is not None and cap is not None:
        raise UserError("give --share (a target share) or --cap (a most), not both")
    if real.resolve() == synthetic.resolve():
        raise UserError(f"--real and --synthetic are the same file {real}; give two files")
    tagged = _tagged(real, "real") + _tagged(synthetic, "synthetic")
    columns = {p: sorted(_tagged_columns(t, p)) for p, t in ((real, tagged), (synthetic, tagged))}
    if columns[real] != columns[synthetic]:
        raise UserError(
            f"{real} has columns {', '.join(columns[real])} but {synthetic} has"
            f" {', '.join(columns[synthetic])}: export both in one format"
        )
    pools: dict[str, list[tuple[str, dict[str, Any], dict[str, Any], str]]] = {
        "real": [t for t in tagged if t[0] == "real"],
        "synthetic": [t for t in tagged if t[0] == "synthetic"],
    }
    want_real, want_synthetic = targets(len(pools["real"]), len(pools["synthetic"]), share, cap)
    rng = random.Random(seed)
    kept = rng.sample(pools["real"], want_real) + rng.sample(pools["synthetic"], want_synthetic)
    rng.shuffle(kept)
    rows = [{**row, "origin": origin, "provenance": prov} for origin, row, prov, _ in kept]
    total = len(rows)
    out_share = want_synthetic / total if total else 0.0
    preset = PHASES[phase]
    limit = preset.tolerated if warn_above is None else warn_above
    by_file = Counter(t[2]["file"] for t in tagged)
    counts: dict[str, Any] = {
        "phase": phase,
        "real_in": len(pools["real"]),
        "synthetic_in": len(pools["synthetic"]),
        "real_out": want_real,
        "synthetic_out": want_synthetic,
        "dropped_real": len(pools["real"]) - want_real,
        "dropped_synthetic": len(pools["synthetic"]) - want_synthetic,
        "synthetic_share": round(out_share, 4),
        "tolerated_share": limit,
        "rows_by_file": dict(by_file),
    }
    moved = sum(1 for t in tagged if t[0] != ("real" if t[2]["file"] == str(real) else "synthetic"))
    if moved:
        counts["rows_whose_ids_file_says_otherwise"] = moved
    warnings = []
    if out_share > limit + 1e-9:
        warnings.append(
            f"the synthetic share {out_share:.2f} is above what {phase} tolerates ({limit:.2f}"
            f"{'' if warn_above is not None else ', the preset'}): {preset.why}; lower --share"
            " or set --cap, or --warn-above to accept it"
        )
    return Mixed(rows, [t[3] for t in kept], counts, warnings)


def _tagged_columns(
    tagged: list[tuple[str, dict[str, Any], dict[str, Any], str]], path: Path
) -> set[str]:
    found: set[str] = set()
    for _, row, prov, _ in tagged:
        if prov["file"] == str(path):
            found |= set(row)
    return found
