"""Model and engine settings shared by the CLI, config files, recipes and the Python API."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from synthloom.errors import UserError
from synthloom.validation import one_line


class ModelSettings(BaseModel):
    """Which model to call and how hard to push it."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["embedded", "openai"] = Field(
        "embedded", description="where the model runs: in this process, or an HTTP endpoint"
    )
    base_url: str | list[str] = Field(
        "http://127.0.0.1:8000/v1",
        description="OpenAI-compatible endpoint (backend openai); several, comma-separated (a"
        " list in YAML), make a fleet of interchangeable endpoints serving the same model",
    )
    model: str | None = Field(
        None,
        description="model name (openai) or GGUF path (embedded; default: bundled SmolLM2-135M)",
    )
    api_key_env: str | None = Field(
        None,
        description="name of the environment variable holding the API key; if named it must be"
        " set (default: OPENAI_API_KEY if set)",
    )
    concurrency: int = Field(16, ge=1, le=4096, description="most calls in flight (openai)")
    seed: int | None = Field(0, description="sampling seed; change it to get new samples")
    temperature: float | None = Field(None, ge=0, le=2, description="sampling temperature")
    top_p: float | None = Field(None, gt=0, le=1, description="nucleus sampling")
    max_tokens: int | None = Field(
        None, ge=1, description="longest answer per call, in tokens (default: the task's)"
    )
    rpm: float | None = Field(None, gt=0, description="requests-per-minute limit")
    tpm: float | None = Field(None, gt=0, description="tokens-per-minute limit")
    timeout: float = Field(120.0, gt=0, description="seconds per call")
    max_retries: int = Field(6, ge=0, description="retries per call")
    retry_backoff: float = Field(0.5, gt=0, description="seconds before the first retry; doubles")
    slots: int = Field(4, ge=1, le=64, description="parallel llama.cpp slots (embedded)")
    threads: int | None = Field(
        None,
        ge=1,
        le=512,
        description="CPU threads (embedded); use fewer to run two jobs side by side"
        " (default: one per core)",
    )
    structured_output: Literal["auto", "json_schema", "json_object", "prompt"] = Field(
        "auto",
        description="how to ask for JSON answers: auto tries json_schema, then json_object with"
        " the schema, then the schema in the prompt, and keeps what the server accepts",
    )

    @field_validator("base_url", mode="before")
    @classmethod
    def _endpoints(cls, value: Any) -> Any:
        """A comma-separated text is a fleet (a list); a plain URL stays one endpoint."""
        if isinstance(value, str) and "," in value:
            return [url.strip() for url in value.split(",") if url.strip()]
        return value

    @field_validator("base_url")
    @classmethod
    def _no_credentials(cls, url: str | list[str]) -> str | list[str]:
        urls = [url] if isinstance(url, str) else url
        if not urls:
            raise ValueError("a fleet needs at least one base URL")
        if len({u.rstrip("/") for u in urls}) < len(urls):
            raise ValueError("the same base URL is listed twice; list each endpoint once")
        for one in urls:
            problem = base_url_problem(one)
            if problem:
                raise ValueError(problem)
        return url

    @property
    def base_urls(self) -> list[str]:
        """Every endpoint (one, or the fleet's)."""
        return [self.base_url] if isinstance(self.base_url, str) else list(self.base_url)

    def identity(self) -> dict[str, Any]:
        """The settings that change answers (part of a run's identity)."""
        keys = {"backend", "model", "seed", "temperature", "top_p", "max_tokens"}
        if self.backend == "openai":
            keys.add("base_url")
        identity = self.model_dump(include=keys)
        if isinstance(self.base_url, list):
            # A fleet's endpoints are declared interchangeable: adding or removing one is the
            # same job (its run directory resumes; see synthloom.llm.fleet).
            identity["base_url"] = FLEET
        return identity


FLEET = "fleet"  # a fleet's base_url in run identities and cache keys


def base_url_problem(url: str) -> str | None:
    """Why `url` cannot be a base URL, or None. A user name or password in the URL would be
    sent to the server in clear and written to the run manifest: the key belongs in the
    environment. The message never repeats the URL (it holds the secret)."""
    try:
        parts = urlsplit(url)
        has_credentials = parts.username is not None or parts.password is not None
    except ValueError:  # e.g. a bad port or bracketed host
        return "the base URL is not a valid URL; give it as http(s)://host[:port]/v1"
    if has_credentials:
        return (
            "the base URL must not contain a user name or password ('user:pass@');"
            " remove it and put the API key in the environment variable named by"
            " `api_key_env` (default OPENAI_API_KEY)"
        )
    return None


SETTING_NAMES = tuple(ModelSettings.model_fields)
CONFIG_ENV = "SYNTHLOOM_CONFIG"
DEFAULT_CONFIG = "synthloom.yaml"


def cache_path() -> Path:
    """Where the response cache lives: $SYNTHLOOM_CACHE, else ~/.cache/synthloom/cache.sqlite."""
    env = os.environ.get("SYNTHLOOM_CACHE")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "synthloom" / "cache.sqlite"


def load_yaml(path: Path) -> Any:
    """Read a YAML file, turning every problem into a one-line UserError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    import yaml  # only when a YAML file is read: not on every command's start-up

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{path}{where}: invalid YAML: {problem}") from None


def load_config(path: Path | None) -> dict[str, Any]:
    """Defaults for model options from a YAML config file (explicit, $SYNTHLOOM_CONFIG,
    or ./synthloom.yaml). Unknown keys are errors, so a typo never silently does nothing.

    ./synthloom.yaml is found, not named, so it is read only if it looks like a config (a
    mapping without `steps:`); a recipe saved under that name is skipped, with a note on
    stderr, instead of breaking every command in the folder."""
    found = False
    if path is None:
        env = os.environ.get(CONFIG_ENV)
        if env:
            path = Path(env)
        elif Path(DEFAULT_CONFIG).is_file():
            path, found = Path(DEFAULT_CONFIG), True
        else:
            return {}
    data = load_yaml(path) or {}
    if isinstance(data, dict) and "steps" in data:
        if found:
            _note(f"./{DEFAULT_CONFIG} looks like a recipe (it has steps:); not loaded as config")
            return {}
        raise UserError(
            f"{path} looks like a recipe (it has steps:), not a config of model options;"
            f" run it with `synthloom run {path}`"
        )
    if not isinstance(data, dict):
        if found:
            _note(f"./{DEFAULT_CONFIG} is not a mapping of option: value; not loaded as config")
            return {}
        raise UserError(f"{path}: expected a mapping of option: value")
    try:
        ModelSettings.model_validate(data)
    except ValidationError as exc:
        raise UserError(f"{path}: {one_line(exc)}") from None
    return data


_noted: set[str] = set()


def _note(message: str) -> None:
    """A line on stderr, once per process."""
    if message not in _noted:
        _noted.add(message)
        print(f"synthloom: {message}", file=sys.stderr)


def role_settings(
    main: ModelSettings, overrides: dict[str, Any], *, where: str = ""
) -> ModelSettings:
    """The settings of another model role (a judge, a student): the main model's, with
    `overrides`. A base URL alone means an OpenAI-compatible endpoint; on another backend the
    main model's name means nothing, so it is not inherited."""
    backend = overrides.get("backend") or ("openai" if overrides.get("base_url") else main.backend)
    update: dict[str, Any] = {"backend": backend}
    if backend != main.backend:
        update["model"] = None
    update.update(overrides)
    try:
        return ModelSettings.model_validate(main.model_dump() | update)
    except ValidationError as exc:
        raise UserError(f"{where}{one_line(exc)}") from None
