"""Output safety: how every output file is written, and which paths an output may not take.

- `write_atomic` / `write_jsonl_atomic` / `atomic_file`: a whole file is written to a temporary file beside it,
  fsynced, renamed over the target, and the directory fsynced (where the OS allows): a reader
  or a crash sees the old file or the new one, never half of one.
- `check_output_path`: exported datasets are .jsonl or .parquet (Parquet needs pyarrow), or
  a `datasets` save_to_disk directory where the step allows it.
- `check_not_input`: an output never replaces an input of the same command or step, nor a
  synthloom run directory's own files (records.jsonl, failures.jsonl, manifest.json), nor an
  input run directory. Refused before anything is read or written (UserError, exit 2).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from synthloom.errors import UserError

RUN_MANIFEST = "manifest.json"
# what a curation step (review export, ...) writes beside its output: the step, its inputs and
# counts, so a dataset card can follow an export back to the runs it came from
LINEAGE = "lineage.json"
RUN_FILES = ("records.jsonl", "failures.jsonl", RUN_MANIFEST)
# the files a directory given as an input is read from (a run's records, a judge's rankings)
READ_FROM_DIR = ("records.jsonl", "rankings.jsonl")
OUTPUT_SUFFIXES = (".jsonl", ".parquet")


def _fsync_dir(directory: Path) -> None:
    """Make a rename in `directory` durable; a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_file(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` to fill a temporary file beside `path`, fsync it, rename it onto
    `path` and fsync the directory. On any error the temporary file is removed and `path`
    is left as it was."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        tmp.chmod(0o644)  # mkstemp makes 0600; outputs are ordinary files
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)
    return target


def write_atomic(path: Path, text: str) -> None:
    """Write a whole text file (UTF-8) atomically and durably (see `atomic_file`)."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    atomic_file(path, write)


def write_jsonl_atomic(rows: Iterable[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write one JSON object per line (UTF-8) atomically and durably (see `atomic_file`)."""

    def write(tmp: Path) -> None:
        with tmp.open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")

    return atomic_file(path, write)


def is_dataset_dir(out: Path) -> bool:
    """`out` names a Hugging Face `datasets` directory (save_to_disk): no .jsonl/.parquet
    suffix, and no suffix at all unless it is an existing directory."""
    suffix = out.suffix.lower()
    return suffix not in OUTPUT_SUFFIXES and (suffix == "" or out.is_dir())


def write_lineage(
    out: Path, step: str, inputs: Iterable[Path | str], counts: dict[str, Any]
) -> Path:
    """`<out>/lineage.json` for a directory output, else `<out>.lineage.json`: {"step",
    "inputs", "counts"} (see `synthloom.export.card`)."""
    target = out / LINEAGE if out.is_dir() else out.with_name(f"{out.name}.{LINEAGE}")
    data = {"step": step, "inputs": [str(Path(i)) for i in inputs], "counts": counts}
    write_atomic(target, json.dumps(data, indent=2, default=str) + "\n")
    return target


def check_output_path(out: Path, *, what: str = "", directory: bool = False) -> None:
    """A dataset file name: .jsonl or .parquet (and pyarrow installed for Parquet). With
    `directory`, also a directory name without a suffix: a `datasets` save_to_disk directory,
    which may exist only as one that `datasets` wrote (it is replaced whole)."""
    where = f"{what} {out}" if what else str(out)
    if directory and is_dataset_dir(out):
        if out.exists() and not (out / "dataset_dict.json").is_file():
            if not out.is_dir() or any(out.iterdir()):
                raise UserError(
                    f"{where}: exists and is not a `datasets` directory, which writing would"
                    " replace; choose another output path"
                )
        try:
            import datasets  # noqa: F401
        except ImportError:
            raise UserError(
                "a `datasets` directory needs datasets: pip install 'synthloom[hf]'"
            ) from None
        return
    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        hint = (
            ", or a directory name without a suffix (`datasets` save_to_disk)" if directory else ""
        )
        raise UserError(f"{where}: use a .jsonl or .parquet file name{hint}")
    if out.suffix.lower() == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise UserError("Parquet output needs pyarrow: pip install 'synthloom[hf]'") from None


def _same(a: Path, b: Path) -> bool:
    """The same file or directory: equal resolved paths, or (both existing) os.path.samefile
    (which also sees hard links and differently spelt mounts)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _run_dir_of(out: Path) -> Path | None:
    """The synthloom run directory whose own file `out` would replace, if any."""
    parent = out.resolve().parent
    if out.name in RUN_FILES and (parent / RUN_MANIFEST).is_file():
        return parent
    return None


def check_not_input(out: Path, inputs: Iterable[Path | None], *, what: str = "--out") -> None:
    """Refuse (UserError) an output path that is one of `inputs` (a file, or a directory read
    through its records.jsonl / rankings.jsonl), that is an input directory itself, or that is
    a run directory's records.jsonl, failures.jsonl or manifest.json. `what` names the option
    or key in the message. Nothing is read or written."""
    for source in inputs:
        if source is None:
            continue
        candidates = [source]
        if source.is_dir():
            candidates += [source / name for name in READ_FROM_DIR]
        for candidate in candidates:
            if _same(out, candidate):
                kind = "input directory" if candidate.is_dir() else "input"
                raise UserError(
                    f"{what} {out}: that is the {kind} {candidate}, which writing would"
                    " replace; choose another output path"
                )
    run = _run_dir_of(out)
    if run is not None:
        raise UserError(
            f"{what} {out}: that is {out.name} of the synthloom run directory {run}, which"
            " writing would replace; choose another file name"
        )
