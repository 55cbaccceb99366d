"""Running a task: engines, run directory, progress bar, summary, interrupt and resume."""

from __future__ import annotations

import asyncio
import gc
import importlib
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from synthloom.diversity.spread import Spread, describe
from synthloom.errors import BackendFatal, RunFailed, is_path_error, path_error
from synthloom.llm.base import Backend
from synthloom.llm.cache import ResponseCache
from synthloom.llm.engine import Engine, Sampling
from synthloom.runs import RunDir
from synthloom.settings import ModelSettings, cache_path
from synthloom.tasks.base import RunContext, Task, UnitExecutor
from synthloom.terminal import visible

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

T = TypeVar("T")
_console: Console | None = None


def stderr_console() -> Console:
    """The rich console on stderr, made on first use (rich is not imported before output)."""
    global _console
    if _console is None:
        from rich.console import Console

        _console = Console(stderr=True)
    return _console


def process_started() -> float:
    """When this process started, on the time.monotonic() clock (Linux: from /proc; elsewhere
    when synthloom.runner was imported), so a command's time includes its start-up."""
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        ticks = int(fields[19])  # field 22, starttime: clock ticks after boot
        with open("/proc/uptime", "rb") as f:
            uptime = float(f.read().split()[0])
        age = uptime - ticks / os.sysconf("SC_CLK_TCK")
        if 0 <= age < 86400 * 365:
            return time.monotonic() - age
    except (OSError, ValueError, IndexError):
        pass
    return _IMPORTED


_IMPORTED = time.monotonic()


def make_backend(s: ModelSettings) -> Backend:
    if s.backend == "embedded":
        from synthloom.llm.embedded import EmbeddedBackend

        return EmbeddedBackend(s.model, slots=s.slots, threads=s.threads)
    if isinstance(s.base_url, list):  # a fleet of endpoints serving the same model
        from synthloom.llm.fleet import FleetBackend

        return FleetBackend(
            s.base_url,
            s.model or "default",
            api_key_env=s.api_key_env or "OPENAI_API_KEY",
            api_key_required=s.api_key_env is not None,
            max_connections=s.concurrency,
        )
    from synthloom.llm.openai_http import OpenAIBackend

    return OpenAIBackend(
        s.base_url,
        s.model or "default",
        api_key_env=s.api_key_env or "OPENAI_API_KEY",
        api_key_required=s.api_key_env is not None,
        max_connections=s.concurrency,
    )


def make_engine(s: ModelSettings, backend: Backend, cache: ResponseCache) -> Engine:
    concurrency = s.slots if s.backend == "embedded" else s.concurrency
    return Engine(
        backend,
        cache,
        concurrency=concurrency,
        seed=s.seed,
        sampling=Sampling(s.temperature, s.top_p, s.max_tokens),
        rpm=s.rpm,
        tpm=s.tpm,
        max_retries=s.max_retries,
        timeout=s.timeout,
        backoff_base=s.retry_backoff,
        structured_output=s.structured_output,
    )


@dataclass
class Summary:
    status: str
    out: Path
    units_ok: int
    units_failed: int
    records_new: int
    records_present: int
    failures: dict[str, int]
    counters: dict[str, int]
    calls: int
    requests: int
    cache_hits: int
    retries: int
    invalid_outputs: int
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    # per model role: backend, model, structured-output mode in use, served model (manifest)
    backends: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # see RunContext.warn
    # the most common failure with its text, e.g. "invalid_output: answer cut off by max_tokens"
    top_failure: str = ""
    # how varied the output is (synthloom.diversity.spread): distinct-2, near-duplicate rate,
    # coverage of topic leaves and sampled values, units re-asked; None without generated text
    spread: dict[str, Any] | None = None
    # where the units ran, with an executor other than the local one (e.g. {"kind": "ray",
    # "units_on_actors": 144, "actors": 2, "actors_used": 2}, or "in_driver": why); None:
    # here, locally
    executor: dict[str, Any] | None = None

    @property
    def outcome(self) -> str:
        """What the run achieved, for people: `status` says only whether it ran to its end."""
        if self.status != "complete":
            return self.status  # interrupted, or failed on an error
        if self.units_failed and not self.units_ok:
            return "failed"
        return "partly failed" if self.units_failed else "complete"

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["out"] = str(self.out)
        d["outcome"] = self.outcome
        return d


def run_identity(task: Task, models: dict[str, ModelSettings]) -> dict[str, Any]:
    """What makes a run the same job: a rerun with the same identity resumes its directory.

    The task's growable keys (e.g. qa's `n`) are its `extent`, outside the job's hash:
    raising `n` on an existing run keeps its records and adds the new units."""
    config = task.config()
    extent = {k: config.pop(k) for k in type(task).growable if k in config}
    identity: dict[str, Any] = {
        "task": task.name,
        "config": config,
        "models": {role: s.identity() for role, s in models.items()},
    }
    if extent:
        identity["extent"] = extent
    return identity


def earlier_identities(task: Task, models: dict[str, ModelSettings]) -> list[dict[str, Any]]:
    """How earlier versions wrote this same job's identity, so their run directories resume.

    Before 0.2 a task's `max_tokens` was one of its params (set in a recipe's params) instead
    of a model setting: the same job then had the effective max_tokens in its config and none
    in its model settings."""
    config = task.config()
    if "max_tokens" not in config or not models:
        return []
    main = next(iter(models.values()))
    legacy_models = {role: {**s.identity(), "max_tokens": None} for role, s in models.items()}
    effective = main.max_tokens if main.max_tokens is not None else config["max_tokens"]
    return [
        {
            "task": task.name,
            "config": {**config, "max_tokens": effective},
            "models": legacy_models,
        }
    ]


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Run with the cyclic garbage collector's youngest generation collected every 10,000
    allocations instead of 700 (the older two less often too), then put the thresholds back.
    A call allocates hundreds of short-lived containers (request, answer, record, futures),
    so the default thresholds collect every few calls; this way ~10% less CPU per record of a
    qa run (in-process, the answers instant; issue 12). Memory: at most 10,000 young objects
    wait for a collection. From the run directory and backends on (the backends' imports)."""
    before = gc.get_threshold()
    gc.set_threshold(10_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*before)


@_fewer_collections()
def run_task(
    task: Task,
    models: dict[str, ModelSettings] | ModelSettings,
    out: Path | str,
    *,
    command: str | None = None,
    show_progress: bool = True,
    cache: Path | str | None = None,
    started: float | None = None,
    executor: Executor | None = None,
) -> Summary:
    """Run `task` into the run directory `out`, resuming whatever an earlier run left there.
    `models` is one ModelSettings for every role the task calls, or one per role.
    The summary's time runs from `started` (time.monotonic(); the command line gives the
    process's start) to the last record and cache row written; by default from this call."""
    started = time.monotonic() if started is None else started
    out = Path(out)
    cache = Path(cache) if cache is not None else None
    if isinstance(models, ModelSettings):
        models = task.models(models)
    run = RunDir(
        out,
        command or task.name,
        run_identity(task, models),
        earlier=earlier_identities(task, models),
    )
    backends = {role: make_backend(s) for role, s in models.items()}  # validates before any I/O
    announce_size(task)
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            return runner.run(
                _execute(
                    task,
                    models,
                    backends,
                    cache or cache_path(),
                    run,
                    show_progress,
                    started,
                    executor,
                )
            )
    except OSError as exc:  # an unwritable, full or read-only run directory: the user's to fix
        if is_path_error(exc):
            raise path_error(exc) from None
        raise
    except BaseExceptionGroup as group:  # the same, raised inside the task's workers
        first = group.exceptions[0]
        if isinstance(first, OSError) and is_path_error(first):
            raise path_error(first) from None
        raise


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop a run goes on: uvloop's where it is installed (a dependency except on
    Windows: 6% fewer instructions per request of a qa run, measured with callgrind, issue
    12), else asyncio's. SYNTHLOOM_EVENT_LOOP=asyncio asks for asyncio's anyway."""
    if os.environ.get("SYNTHLOOM_EVENT_LOOP", "").lower() == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


class Executor(Protocol):
    """Where a task's units run (synthloom.executors.ray); `bind` gives the task's
    UnitExecutor (which runs them here when they depend on one another), or None."""

    def bind(
        self, task: Task, models: dict[str, ModelSettings], cache: Path
    ) -> UnitExecutor | None: ...

    def model_free(self) -> AbstractContextManager[None]:
        """Where a model-free step (dedup, filter, export...) runs inside."""
        ...

    def after_task(self, out: Path) -> None:
        """A task step is done: its run directory is `out` (e.g. write sharded outputs)."""


LARGE_JOB = 10_000  # units; a job this big says so before it starts


def announce_size(task: Task) -> str | None:
    """Print (on stderr) and return how big a large job is before it starts, so that a huge
    input (a 50 MB one-line document) never silently becomes tens of thousands of calls."""
    total = task.total()
    if total is None or total <= LARGE_JOB:
        return None
    describe = getattr(task, "size_detail", None)
    detail = describe() if callable(describe) else None
    line = (
        f"this job makes at least {total:,} model calls{f' ({detail})' if detail else ''};"
        " Ctrl-C to stop, it can be resumed"
    )
    # plain text, as rich would print it: importing rich here would hold up the first call
    # by ~0.1 s (the progress bar and summary import it while the run goes on)
    print(line, file=sys.stderr, flush=True)
    return line


async def _start(backends: dict[str, Backend]) -> None:
    """Load models and check endpoints before anything is written."""
    try:
        for backend in backends.values():
            await backend.start()
            preflight = getattr(backend, "preflight", None)
            if preflight is not None:
                await preflight()
    except BaseException:
        for backend in backends.values():
            await backend.close()
        raise


async def _close(backends: dict[str, Backend]) -> None:
    for backend in backends.values():
        await backend.close()


async def _execute(
    task: Task,
    models: dict[str, ModelSettings],
    backends: dict[str, Backend],
    cache_file: Path,
    run: RunDir,
    show_progress: bool,
    started: float,
    executor: Executor | None = None,
) -> Summary:
    await _start(backends)
    try:
        cache = ResponseCache(cache_file)
    except BaseException:
        await _close(backends)
        raise
    try:
        run.open(cache)
        if task.resume_by_unit:
            run.open_units_done()
        for note in run.notes:
            stderr_console().print(
                f"synthloom: {note}", markup=False, highlight=False, soft_wrap=True
            )
    except BaseException as exc:
        cache.close()
        await _close(backends)
        if isinstance(exc, OSError) and is_path_error(exc):
            raise path_error(exc, "cannot write the run directory") from None
        raise
    engines = {role: make_engine(models[role], b, cache) for role, b in backends.items()}
    # A progress bar only where someone sees it (rich's disabled bar still costs per unit).
    progress = _progress() if show_progress and sys.stderr.isatty() else None
    bar = _Bar(progress, task.name, task.total()) if progress is not None else None
    ctx = RunContext(engines, run, bar, resume_by_unit=task.resume_by_unit)
    if executor is not None:  # e.g. Ray actors: the units of for_each go there
        ctx.executor = executor.bind(task, models, cache_file)
    ctx.spread = Spread(type(task).spread_texts)
    measuring = ctx.spread.texts_of is not None
    imported = _import_meanwhile(
        (("synthloom.quality.metrics",) if measuring else ()),
        warm_summary=show_progress,
    )
    # the spread summary's texts are measured while the run waits, not after its last answer;
    # not when the run has more units than the summary samples: its sample keeps changing
    # until the end then, and what was measured meanwhile would be measured again (at 20,000
    # qa units, 0.12 s of CPU spent for nothing while the calls go on)
    total = task.total()
    digesting = (
        asyncio.create_task(_digest_meanwhile(ctx.spread, imported))
        if measuring and (total is None or total <= ctx.spread.size)
        else None
    )
    status = "failed"
    fatal = False
    try:
        if progress is not None:
            progress.start()
        try:
            await task.execute(ctx)
        except* BackendFatal as group:
            fatal = True
            raise group.exceptions[0] from None
        status = "complete"
    except (asyncio.CancelledError, KeyboardInterrupt):
        status = "interrupted"
        raise
    finally:
        if digesting is not None:
            digesting.cancel()
        if progress is not None:
            if bar is not None:
                bar.show()
            progress.stop()
        run.flush()  # the last records and cache rows are part of the run's time
        cache.stop_writing()  # the writer commits and closes while the connections close
        for backend in backends.values():
            await backend.close()
        cache.close()
        summary = _summary(status, run, ctx, time.monotonic() - started)
        run.close(status, summary.as_dict())
        # A backend that refused the first call (a bad key, a web page instead of an API)
        # did nothing worth a table: its one error line says it all.
        nothing_done = summary.units_ok == summary.units_failed == summary.records_new == 0
        if show_progress and not (fatal and nothing_done):
            print_summary(summary)
        if status == "interrupted":
            from rich.text import Text

            safe = run.written + run.already_present
            stderr_console().print(  # Text(): a path is never markup
                Text.assemble(
                    ("Interrupted.", "yellow"),
                    f" {safe} records are safe in {visible(run.path)}. Run the same command"
                    " again to resume; finished calls are cached.",
                )
            )
    if summary.units_ok == 0 and summary.units_failed > 0:
        raise RunFailed(
            f"every unit failed ({_top(summary.failures)}; most often {summary.top_failure});"
            f" see {run.path / 'failures.jsonl'}"
        )
    return summary


def _import_meanwhile(modules: tuple[str, ...], warm_summary: bool = False) -> threading.Event:
    """Import `modules` on a daemon thread: what the end of a run imports (the spread
    summary's numpy and rensa, the summary table's rich: ~0.15-0.25 s of CPU) is imported
    while the run waits for the network or the model, not after its last answer (issue 12).
    With `warm_summary`, rich also draws a table nobody sees (its first table costs ~12 ms
    of lazy imports and caches, later ones ~2 ms). The import lock makes the run's own
    import wait for this one, never repeat it; a failure here is left for that import to
    report. The event is set when the modules are imported."""
    done = threading.Event()

    def work() -> None:
        try:
            for name in modules:
                importlib.import_module(name)
            done.set()
            if warm_summary:
                _draw_unseen_table()
        except Exception:  # noqa: BLE001 - the real import (or table) reports it
            pass

    threading.Thread(target=work, name="synthloom-imports", daemon=True).start()
    return done


def _draw_unseen_table() -> None:
    import io

    from rich.console import Console
    from rich.text import Text

    table = _summary_table("synthloom")
    table.add_row("output", Text("runs/x"))
    Console(file=io.StringIO(), width=80).print(table)


def _summary_table(title: str) -> Table:
    """The summary's table, empty: two columns, names in bold."""
    from rich.table import Table

    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    return table


async def _digest_meanwhile(spread: Spread, imported: threading.Event) -> None:
    """Measure the spread summary's texts a part at a time while the run goes on (a few ms
    every tenth of a second), once numpy and rensa are imported (never waiting for them)."""
    while True:
        await asyncio.sleep(0.1)
        if imported.is_set():
            spread.digest()


class _Bar:
    """The run's rich progress bar, as a task's context sees it. Advances are handed to rich
    at most every 0.1 s (rich's own advance costs more than a unit's bookkeeping)."""

    def __init__(self, progress: Progress, name: str, total: int | None) -> None:
        self.progress = progress
        self.bar = progress.add_task(name, total=total)
        self._pending = 0
        self._shown = 0.0

    def set_total(self, total: int | None, description: str | None) -> None:
        self._pending = 0
        self.progress.update(self.bar, total=total, completed=0, description=description or "")

    def advance(self) -> None:
        self._pending += 1
        now = time.monotonic()
        if now - self._shown >= 0.1:
            self.show()
            self._shown = now

    def show(self) -> None:
        if self._pending:
            self.progress.advance(self.bar, self._pending)
            self._pending = 0


def _progress() -> Progress:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr_console(),
        transient=False,
        refresh_per_second=4,
        disable=not sys.stderr.isatty(),
    )


def _summary(status: str, run: RunDir, ctx: RunContext, seconds: float) -> Summary:
    failures = run.failure_causes
    totals = Counter[str]()
    calls = requests = hits = retries = invalid = pt = ct = 0
    for e in ctx.engines.values():
        s = e.stats
        calls += s.calls
        requests += s.requests
        hits += s.cache_hits
        retries += s.retries
        invalid += s.invalid_outputs
        pt += s.prompt_tokens
        ct += s.completion_tokens
        totals.update(s.failures)
    counters = {k: v for k, v in ctx.counters.items() if k not in ("units_ok", "units_failed")}
    return Summary(
        status=status,
        out=run.path,
        units_ok=ctx.counters["units_ok"],
        units_failed=ctx.counters["units_failed"],
        records_new=run.written,
        records_present=run.already_present,
        failures=dict(failures),
        counters=counters,
        calls=calls,
        requests=requests,
        cache_hits=hits,
        retries=retries,
        invalid_outputs=invalid,
        prompt_tokens=pt,
        completion_tokens=ct,
        seconds=round(seconds, 3),
        backends={role: e.backend.describe() for role, e in ctx.engines.items()},
        warnings=list(ctx.warnings),
        top_failure=run.top_failure(),
        spread=ctx.spread.summary(ctx.counters) if ctx.spread is not None else None,
        executor=ctx.executor.describe() if ctx.executor is not None else None,
    )


def print_summary(s: Summary) -> None:
    from rich.text import Text

    table = _summary_table(f"synthloom: {s.outcome}")
    table.add_row("output", Text(visible(s.out)))  # Text(): a path is never markup
    table.add_row("units", f"{s.units_ok} ok, {s.units_failed} failed")
    table.add_row("records", f"{s.records_new} new, {s.records_present} already there (resumed)")
    if s.failures:
        table.add_row("failures", Text(visible(_top(s.failures))))  # causes quote servers
        if s.top_failure:
            table.add_row("most often", Text(visible(s.top_failure)))
    for name, value in sorted(s.counters.items()):
        table.add_row(Text(visible(name.replace("_", " "))), str(value))
    rate = s.requests / s.seconds if s.seconds else 0.0
    table.add_row(
        "calls",
        f"{s.calls} ({s.cache_hits} from cache), {s.requests} requests sent, {s.retries} retries,"
        f" {s.invalid_outputs} unusable answers",
    )
    if s.spread is not None:
        table.add_row("spread", Text(visible(describe(s.spread))))
    table.add_row("tokens", f"{s.prompt_tokens} prompt + {s.completion_tokens} completion")
    from synthloom.llm.fleet import fleet_line

    for role, info in s.backends.items():  # a fleet's endpoints and failovers
        if (line := fleet_line(info)) is not None:
            name = "endpoints" if len(s.backends) == 1 else f"endpoints ({role})"
            table.add_row(Text(visible(name)), Text(visible(line)))
    if s.executor is not None:
        table.add_row("executor", Text(visible(_where(s.executor))))
    table.add_row("time", f"{s.seconds:.1f}s, {rate:.1f} requests/s")
    stderr_console().print(table)
    for warning in s.warnings:
        stderr_console().print(
            Text(f"warning: {visible(warning)}", style="bold yellow"), soft_wrap=True
        )


def _where(executor: dict[str, Any]) -> str:
    """Where a step's units ran, e.g. "ray: 144 units on 2 of 2 actors"."""
    kind = executor.get("kind", "?")
    if executor.get("units_on_actors"):
        n, used, pool = (
            executor["units_on_actors"],
            executor.get("actors_used"),
            executor.get("actors"),
        )
        return f"{kind}: {n} units on {used} of {pool} actors"
    if executor.get("in_driver"):
        return f"{kind}: in this process ({executor['in_driver']})"
    return f"{kind}: no units to send"


def _top(counter: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(counter.items(), key=lambda kv: -kv[1]))
