"""Prompt templates: Jinja2 files beside the task modules (`tasks/prompts/*.jinja`).

A template renders to chat messages. Lines `--- system ---` and `--- user ---` start the
system and user parts; a template without markers is one user message. The template's name
and a hash of its source go into every record's provenance.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

PROMPTS_DIR = Path(__file__).parent / "tasks" / "prompts"
_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(PROMPTS_DIR)),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=False,
    autoescape=False,  # prompts are plain text sent to a model, not HTML
)


@dataclass(frozen=True)
class Template:
    name: str
    hash: str
    _template: jinja2.Template

    def messages(self, **variables: Any) -> list[dict[str, str]]:
        text = self._template.render(**variables)
        messages: list[dict[str, str]] = []
        role, lines = "user", []
        for line in text.splitlines():
            marker = line.strip()
            if marker in ("--- system ---", "--- user ---"):
                if any(x.strip() for x in lines):
                    messages.append({"role": role, "content": "\n".join(lines).strip()})
                role, lines = marker.strip("- ").strip(), []
            else:
                lines.append(line)
        if any(x.strip() for x in lines):
            messages.append({"role": role, "content": "\n".join(lines).strip()})
        return messages


@cache
def load(name: str) -> Template:
    """Load `tasks/prompts/<name>.jinja`."""
    source = (PROMPTS_DIR / f"{name}.jinja").read_text(encoding="utf-8")
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    return Template(name=name, hash=digest, _template=_ENV.get_template(f"{name}.jinja"))
