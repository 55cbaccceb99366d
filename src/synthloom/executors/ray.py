"""The Ray executor: a task's units on Ray Data actors, the run itself unchanged.

`synthloom run recipe.yaml --executor ray [--address ADDR]` runs the recipe as locally
(the same steps, in order, through the same code) with one difference: the units a task hands
to `ctx.for_each` are processed by a pool of Ray actors instead of this process's event loop.

How a step runs (see docs/RAY.md):

* The driver (this process) builds the task and its units exactly as locally: the same unit
  ids, from the same input rows, so the same record ids. Units an earlier run finished are
  skipped here (units.done), before anything is sent.
* Units go in shards (lists of units) into a Ray dataset; `map_batches` runs `_UnitWorker`
  actors over it (`ActorPoolStrategy`). Each actor holds its own engines (backends built from
  the step's model settings, with their own concurrency, retries and rate limits, per actor)
  and opens the response cache itself. It runs the task's own unit function (`fn`, pickled
  with the task; the run context it closes over becomes the actor's), and returns the unit's
  records, its failures, counters, warnings and engine statistics.
* The driver writes what comes back as it comes: each unit's records through the task's
  `then` (its bookkeeping across units: qa's repeat flags, judge's rankings), then
  records.jsonl, failures, units.done, the counters and the summary, as locally. Records
  arrive in completion order. A task that does not resume by unit is resumed as locally:
  every unit is sent again, its calls answered from the cache, and the records already in
  the run are not written twice (the driver's record ids).

Only tasks whose units are independent (`Task.independent_units`: nothing carried from one
unit to the next, which a copy of the task on each actor would break) are sent to the actors;
any other task runs in the driver, as locally, and says why once (`Task.dependent_units`).
The summary says where a step's units ran (`summary.executor`). Model-free steps run as
locally, except near-dup dedup, which runs on the cluster (synthloom.quality.dedup_ray).
"""

from __future__ import annotations

import asyncio
import io
import pickle
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthloom.errors import BackendFatal, UserError
from synthloom.llm.engine import EngineStats
from synthloom.records import Record
from synthloom.runner import make_backend, make_engine, stderr_console
from synthloom.settings import ModelSettings
from synthloom.tasks.base import RunContext, Task, Then, Unit

if TYPE_CHECKING:
    from synthloom.idset import IdSet

UnitFn = Callable[[Unit], Awaitable[list[Record]]]


def ray_module() -> Any:
    """`ray` with Ray Data, or a UserError saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise UserError(
            "--executor ray needs Ray: pip install 'synthloom[ray]' (or pip install 'ray[data]')"
        ) from None
    return ray


class RayExecutor:
    """Connects to a Ray cluster (`address`, e.g. "ray://head:10001" or "auto"; None starts
    a local one, or uses the one already initialised) and runs tasks' units on it.

    `actors`: actors per step (default: the cluster's CPUs); each makes up to the model's
    `concurrency` calls at once, so a step has up to actors x concurrency calls in flight.
    `shard`: units per shard handed to an actor at a time (default: 4 x concurrency)."""

    def __init__(
        self,
        address: str | None = None,
        *,
        actors: int | None = None,
        shard: int | None = None,
        num_cpus: int | None = None,
        shards: str | None = None,
    ) -> None:
        ray = ray_module()
        if not ray.is_initialized():
            ray.init(
                address=address,
                num_cpus=num_cpus if address is None else None,
                include_dashboard=False,
                log_to_driver=False,
            )
        import ray.data

        ray.data.DataContext.get_current().enable_progress_bars = False
        self.actors = actors or max(1, int(ray.cluster_resources().get("CPU", 1)))
        self.shard = shard
        self.units_sent = 0  # units handed to actors (all steps)
        self.shards = shards  # "jsonl" or "parquet": each task step's records also sharded

    def after_task(self, out: Path) -> None:
        """With `shards`, write the step's records as shards in `<out>/shards/`."""
        if self.shards:
            write_shards(out / "records.jsonl", out / "shards", self.shards)

    def bind(self, task: Task, models: dict[str, ModelSettings], cache: Path) -> _TaskOnRay:
        """The step's UnitExecutor: its units go to the actors when the task's units are
        independent (`Task.independent_units`), else they run in this process."""
        here = None if task.independent_units else task.dependent_units
        if here is not None:
            _note(
                f"{task.name}: {here}, so its units run in this process (the Ray executor"
                " spreads tasks whose units are independent)"
            )
        return _TaskOnRay(self, models, cache, here)

    @contextmanager
    def model_free(self) -> Iterator[None]:
        """Model-free steps run as locally, their near-dup dedup on the cluster."""
        from synthloom.quality.dedup import using_near_finder
        from synthloom.quality.dedup_ray import RayNearDedup

        with using_near_finder(RayNearDedup):
            yield


def _note(text: str) -> None:
    stderr_console().print(f"synthloom: {text}", markup=False, highlight=False, soft_wrap=True)


class _TaskOnRay:
    """A task's `for_each` on Ray (a UnitExecutor, see synthloom.tasks.base); `here`: why
    its units run in this process instead (None: they go to the actors)."""

    def __init__(
        self,
        executor: RayExecutor,
        models: dict[str, ModelSettings],
        cache: Path,
        here: str | None = None,
    ):
        self.executor = executor
        self.models = models
        self.cache = cache
        self.here = here
        self.units_sent = 0  # this step's units handed to the actors
        self.actors_used: set[str] = set()  # the actors that returned a shard's outcome

    def describe(self) -> dict[str, Any]:
        """Where the step's units ran (`summary.executor` in the manifest)."""
        out: dict[str, Any] = {"kind": "ray", "units_on_actors": self.units_sent}
        if self.units_sent:
            out["actors"] = self.executor.actors  # the pool's size
            out["actors_used"] = len(self.actors_used)  # those that got units
        if self.here is not None:
            out["in_driver"] = self.here
        return out

    async def for_each(
        self, ctx: RunContext, units: Iterable[Unit], fn: UnitFn, then: Then | None = None
    ) -> None:
        if self.here is not None:
            await ctx.run_here(units, fn, then)
            return
        try:
            fn_blob = dumps_fn(fn, ctx)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            self.here = f"its unit function cannot be sent to Ray ({type(exc).__name__})"
            _note(f"{self.here}; its units run in this process")
            await ctx.run_here(units, fn, then)
            return
        concurrency = max(s.concurrency for s in self.models.values())
        size = self.executor.shard or 4 * concurrency
        shards = []
        for chunk in _chunks(units, size):
            shards.append(pickle.dumps(chunk))
            self.units_sent += len(chunk)
            self.executor.units_sent += len(chunk)
        if not shards:
            return
        setup = pickle.dumps(
            {
                "models": self.models,
                "cache": str(self.cache),
                "path": str(ctx.run.path),
                "existing": ctx.run.existing,
            }
        )
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def produce() -> None:  # Ray's iterator blocks: a thread feeds the event loop
            try:
                for result in _results(shards, setup, fn_blob, self.executor.actors):
                    if stop.is_set():
                        break
                    loop.call_soon_threadsafe(queue.put_nowait, result)
            except BaseException as exc:  # noqa: BLE001 - handed to the loop, raised there
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            loop.call_soon_threadsafe(queue.put_nowait, None)

        thread = threading.Thread(target=produce, name="synthloom-ray", daemon=True)
        thread.start()
        try:
            while (result := await queue.get()) is not None:
                if isinstance(result, BaseException):
                    raise result
                outcome = pickle.loads(result)
                self.actors_used.add(outcome.get("actor", ""))
                _apply(ctx, outcome, then)
        finally:
            stop.set()


def write_shards(source: Path, directory: Path, fmt: str) -> int:
    """A records .jsonl file as shards written by the cluster's workers: `part-*.jsonl`
    (the lines as they are) or Parquet files (columns id, task, status, and data, provenance
    and notes as JSON text, so records of any shape share one schema). Earlier shards in
    `directory` are replaced. Returns the number of records."""
    ray = ray_module()
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.iterdir():
        if old.name.startswith("part-") or old.suffix in (".parquet", ".jsonl"):
            old.unlink()
    ds = ray.data.read_text(str(source)).filter(lambda row: bool(row["text"].strip()))
    if fmt == "jsonl":
        written = ds.map_batches(
            _write_jsonl, fn_kwargs={"directory": str(directory)}, batch_format="numpy"
        )
        return int(written.sum("records") or 0)
    if fmt == "parquet":
        table = ds.map_batches(_record_columns, batch_format="numpy")
        table.write_parquet(str(directory))
        return int(table.count())
    raise UserError(f"--shards: {fmt!r} is not a shard format; use jsonl or parquet")


def _write_jsonl(batch: dict[str, Any], directory: str) -> dict[str, Any]:
    import uuid

    import numpy as np

    lines = batch["text"].tolist()
    path = Path(directory) / f"part-{uuid.uuid4().hex[:12]}.jsonl"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return {"records": np.array([len(lines)])}


def _record_columns(batch: dict[str, Any]) -> dict[str, Any]:
    import json

    import numpy as np

    records = [json.loads(line) for line in batch["text"].tolist()]
    columns: dict[str, Any] = {}
    for name in ("id", "task", "status"):
        columns[name] = np.array([str(r.get(name, "")) for r in records], dtype=object)
    for name in ("data", "provenance", "notes"):
        columns[name] = np.array(
            [json.dumps(r.get(name), ensure_ascii=False) for r in records], dtype=object
        )
    return columns


def _chunks(units: Iterable[Unit], size: int) -> Iterator[list[Unit]]:
    chunk: list[Unit] = []
    for unit in units:
        chunk.append(unit)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _results(shards: list[bytes], setup: bytes, fn_blob: bytes, actors: int) -> Iterator[bytes]:
    """Each shard's result, as the actors finish them (Ray Data, streaming)."""
    import numpy as np
    import ray.data

    items = [{"units": blob} for blob in shards]
    ds = ray.data.from_items(items, override_num_blocks=min(len(items), 4 * actors))
    out = ds.map_batches(
        _UnitWorker,
        fn_constructor_kwargs={"setup": setup, "fn_blob": fn_blob},
        batch_size=1,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=min(actors, len(items))),
        num_cpus=1,
        max_concurrency=2,  # two shards per actor at once: no idle tail between shards
    )
    for batch in out.iter_batches(batch_size=1, batch_format="numpy", prefetch_batches=0):
        yield from np.asarray(batch["result"]).tolist()


def _apply(ctx: RunContext, result: dict[str, Any], then: Then | None = None) -> None:
    """One shard's outcome, written in the driver as if its units had run here (each unit's
    records through the task's `then`, here)."""
    if "fatal" in result:
        raise BackendFatal(result["fatal"])
    for unit, cause, detail, extra in result["fails"]:
        ctx.run.fail(unit, cause, detail, **extra)
    ctx.counters.update(result["counters"])
    for unit_id, records in result["done"]:
        ctx.finished(unit_id, records, then)
        if ctx.progress is not None:
            ctx.progress.advance()
    for _ in range(result["counters"].get("units_failed", 0)):
        if ctx.progress is not None:
            ctx.progress.advance()
    for warning in result["warnings"]:
        if warning not in ctx.warnings:
            ctx.warnings.append(warning)
    for role, stats in result["stats"].items():
        engine = ctx.engines.get(role)
        if engine is not None:
            _add_stats(engine.stats, stats)
            if engine.backend.structured_mode is None:
                engine.backend.structured_mode = result["modes"].get(role)


def _add_stats(into: EngineStats, more: EngineStats) -> None:
    for f in fields(EngineStats):
        mine = getattr(into, f.name)
        if isinstance(mine, Counter):
            mine.update(getattr(more, f.name))
        else:
            setattr(into, f.name, mine + getattr(more, f.name))


# -- pickling the unit function ------------------------------------------------------------
_CTX = "synthloom.ctx"


def dumps_fn(fn: UnitFn, ctx: RunContext) -> bytes:
    """`fn` with what it closes over (the task, by value), the run context and its engines
    left as references that the actor fills in with its own."""
    from ray import cloudpickle

    engines = {id(e): role for role, e in ctx.engines.items()}

    class Pickler(cloudpickle.CloudPickler):
        def persistent_id(self, obj: Any) -> Any:
            if obj is ctx:
                return _CTX
            role = engines.get(id(obj))
            return ("engine", role) if role is not None else None

    buffer = io.BytesIO()
    Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(fn)
    return buffer.getvalue()


def loads_fn(blob: bytes, ctx: RunContext) -> UnitFn:
    class Unpickler(pickle.Unpickler):
        def persistent_load(self, pid: Any) -> Any:
            if pid == _CTX:
                return ctx
            if isinstance(pid, tuple) and pid[0] == "engine":
                return ctx.engines[pid[1]]
            raise pickle.UnpicklingError(f"unknown reference {pid!r}")

    return Unpickler(io.BytesIO(blob)).load()  # type: ignore[no-any-return]


# -- the actor -----------------------------------------------------------------------------
class _Collected:
    """The actor's stand-in for the run directory: failures are kept to send back; the ids
    already in the run are the driver's at the step's start (what `ctx.existing` answers)."""

    def __init__(self, path: Path, existing: IdSet) -> None:
        self.path = path
        self.existing = existing
        self.fails: list[tuple[str, str, str, dict[str, Any]]] = []

    def fail(self, unit: str, cause: str, detail: str = "", **extra: Any) -> None:
        self.fails.append((unit, cause, detail, extra))

    def mark_done(self, unit: str, records: int) -> None:  # the driver does this
        pass


class _UnitWorker:
    """A Ray Data actor: engines of its own on a private event loop, the task's unit
    function, and shards of units in, their outcomes out."""

    def __init__(self, setup: bytes, fn_blob: bytes) -> None:
        conf = pickle.loads(setup)
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="synthloom-actor", daemon=True).start()
        import ray

        self.actor = ray.get_runtime_context().get_actor_id() or ""
        self.models: dict[str, ModelSettings] = conf["models"]
        self.run = _Collected(Path(conf["path"]), conf["existing"])
        self.ctx = asyncio.run_coroutine_threadsafe(self._start(conf), self.loop).result()
        self.fn = loads_fn(fn_blob, self.ctx)

    async def _start(self, conf: dict[str, Any]) -> RunContext:
        from synthloom.llm.cache import ResponseCache

        backends = {role: make_backend(s) for role, s in self.models.items()}
        for backend in backends.values():
            await backend.start()
        self.cache = ResponseCache(Path(conf["cache"]))
        engines = {
            role: make_engine(self.models[role], b, self.cache) for role, b in backends.items()
        }
        return RunContext(engines, self.run)  # type: ignore[arg-type]

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        out = [
            pickle.dumps(asyncio.run_coroutine_threadsafe(self._shard(blob), self.loop).result())
            for blob in batch["units"]
        ]
        result = np.empty(len(out), dtype=object)
        result[:] = out
        return {"result": result}

    async def _shard(self, blob: bytes) -> dict[str, Any]:
        units: list[Unit] = pickle.loads(blob)
        done: list[tuple[str, list[Record]]] = []

        async def handle(unit: Unit) -> None:
            done.append((unit.id, await self.fn(unit)))

        fatal: list[str] = []
        try:
            await self.ctx._run(units, handle)
        except* BackendFatal as group:
            fatal.append(str(group.exceptions[0]))
        if fatal:
            return {"fatal": fatal[0], "actor": self.actor}
        self.cache.flush()  # the answers are committed before their records are written
        # What this shard (and any shard running beside it) added since the last one: each
        # counter, failure and statistic is sent back exactly once.
        ctx = self.ctx
        counters, ctx.counters = ctx.counters, Counter()
        fails, self.run.fails = self.run.fails, []
        warnings, ctx.warnings = ctx.warnings, []
        stats = {}
        for role, engine in ctx.engines.items():
            stats[role], engine.stats = engine.stats, EngineStats()
        modes = {role: e.backend.structured_mode for role, e in ctx.engines.items()}
        return {
            "actor": self.actor,
            "done": done,
            "fails": fails,
            "counters": dict(counters),
            "warnings": warnings,
            "stats": stats,
            "modes": modes,
        }
