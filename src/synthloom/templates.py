r"""Prompt templates: Jinja2 files beside the task modules (`tasks/prompts/*.jinja`).

A template declares each chat message it makes as a block; the system block is optional:

    {% block system %}You label texts. Answer with one of the allowed labels.{% endblock %}
    {% block user %}
    {%- set f = fence(text, "[Text]", "[End of Text]") %}
    Label this text:
    {{ f.open }}
    {{ text }}
    {{ f.close }}
    {% endblock %}

`Template.messages(**variables)` renders each block on its own and returns the system message
(if any), then the user message. Inserted text is data inside the message of its block whatever
it contains: a line such as `--- system ---` is only text and opens no role. Each part has its
line breaks made "\n" (`str.splitlines`) and is stripped; a part that renders empty is left
out, so `{% block system %}{% if system %}{{ system }}{% endif %}{% endblock %}` sends no system
message when `system` is empty. All wording lives in the template: texts chosen by name (a
style's instruction, an operation's method) are a mapping set inside the block that uses them,
and the task passes the name:

    {% block system %}
    {%- set styles = {"formal": "Use a formal tone.", "casual": "Write as to a friend."} %}
    Style: {{ styles[style] }}
    {% endblock %}

Such a `{% set name = <literal> %}` is also readable from Python as `Template.constants["name"]`
(for the style names a command offers, or a check that the model did not copy a demo text); a
name set twice must hold the same value. `load` refuses a template without a `user` block, with other blocks, or with text or tags
outside its blocks (they would never be sent).

`fence(text, open, close=open)`, available in every template, gives the markers to put around
untrusted text so that the text cannot close them: `open`/`close` as given when `close` does
not occur in the text, otherwise both wrapped in their own first and last character (three
double quotes become five, then seven; `[End of Text]` becomes `[[End of Text]]`) until `close`
does not occur in it. Ordinary text keeps the plain markers.

For text without marker lines or fence markers these rules give, byte for byte, the messages of
the earlier format (one template whose rendered text was split on `--- system ---` and
`--- user ---` lines); record ids and cache keys hash the messages, so earlier runs resume.
The template's name and a hash of its source (wording and constants included) go into every
record's provenance.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jinja2
from jinja2 import nodes

PROMPTS_DIR = Path(__file__).parent / "tasks" / "prompts"
ROLES = ("system", "user")  # the order of the messages
_MEMO_SIZE = 1024  # rendered prompts kept per template


@dataclass(frozen=True)
class Fence:
    open: str
    close: str


def fence(text: str, open: str, close: str | None = None) -> Fence:
    """Markers around `text` that it cannot close (see the module docstring)."""
    close = open if close is None else close
    if not open or not close or len(f"{open}{close}".splitlines()) != 1:
        raise ValueError("fence markers must be non-empty and on one line")
    text = str(text)
    while close in text:
        open, close = open[0] + open + open[-1], close[0] + close + close[-1]
    return Fence(open, close)


_ENV = jinja2.Environment(
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=False,
    autoescape=False,  # prompts are plain text sent to a model, not HTML
)
_ENV.globals["fence"] = fence


@dataclass(frozen=True)
class Template:
    name: str
    hash: str
    _template: jinja2.Template
    constants: Mapping[str, Any] = field(default_factory=dict)
    # rendered messages by their variables (hashable ones only): a task that renders the same
    # few prompts thousands of times (qa --topic: ten angles) renders each once. A prompt is a
    # function of its variables (that is what makes cache keys and resume work); a template
    # using Jinja's `random` filter would not be, and gets its first rendering again.
    _memo: dict[tuple[tuple[str, type, Any], ...], list[dict[str, str]]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def messages(self, **variables: Any) -> list[dict[str, str]]:
        key = tuple((k, v.__class__, v) for k, v in variables.items())  # 1 and 1.0 differ
        try:
            known = self._memo.get(key)
        except TypeError:  # an unhashable value (a list, a dict): rendered every time
            return self._render(variables)
        if known is None:
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()
            known = self._memo[key] = self._render(variables)
        return [dict(m) for m in known]  # the caller's own copy

    def _render(self, variables: dict[str, Any]) -> list[dict[str, str]]:
        messages: list[dict[str, str]] = []
        # One context for every block: a block's `{% set %}` stays in the block (Jinja keeps
        # it in the block's own frame), and a context costs more than rendering a block.
        context = self._template.new_context(variables)
        for role in ROLES:
            block = self._template.blocks.get(role)
            if block is None:
                continue
            text = "".join(block(context))
            content = "\n".join(text.splitlines()).strip()
            if content:
                messages.append({"role": role, "content": content})
        return messages


def from_source(name: str, source: str, filename: str | None = None) -> Template:
    """A template from its source text (`load` reads the file), after checking its blocks."""
    tree = _ENV.parse(source, name=name, filename=filename)
    for node in tree.body:
        if isinstance(node, nodes.Block):
            continue
        for part in node.nodes if isinstance(node, nodes.Output) else [node]:
            if isinstance(part, nodes.TemplateData) and not part.data.strip():
                continue
            line = part.lineno
            if isinstance(part, nodes.TemplateData):  # the line where the text starts
                line += part.data[: len(part.data) - len(part.data.lstrip())].count("\n")
            raise ValueError(
                f"template {name}, line {line}: text or tags outside a block are never sent"
            )
    blocks = [b.name for b in tree.find_all(nodes.Block)]
    top = [b.name for b in tree.body if isinstance(b, nodes.Block)]
    if "user" not in top or blocks != top or set(top) - set(ROLES) or len(top) != len(set(top)):
        raise ValueError(
            f"template {name}: needs one 'user' block and at most one 'system' block"
            f" (not nested), has {blocks}"
        )
    constants = MappingProxyType(_constants(name, tree))
    code = _ENV.compile(tree, name=name, filename=filename)  # the tree: not parsed twice
    # the globals as a plain dict, not Jinja's ChainMap over the environment's: every render
    # copies them into its context, and the ChainMap made that half of a render's cost
    template = _ENV.template_class.from_code(_ENV, code, dict(_ENV.make_globals(None)))
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    return Template(name, digest, template, constants)


def _constants(name: str, tree: nodes.Template) -> dict[str, Any]:
    """The values of the template's `{% set name = <literal> %}` statements."""
    constants: dict[str, Any] = {}
    for node in tree.find_all(nodes.Assign):
        if not isinstance(node.target, nodes.Name):
            continue
        try:
            value = node.node.as_const(nodes.EvalContext(_ENV, name))
        except nodes.Impossible:
            continue  # computed from variables: not a constant
        key = node.target.name
        if constants.setdefault(key, value) != value:
            raise ValueError(f"template {name}: {key!r} is set to two different values")
    return constants


@cache
def load(name: str) -> Template:
    """Load `tasks/prompts/<name>.jinja`."""
    path = PROMPTS_DIR / f"{name}.jinja"
    return from_source(name, path.read_text(encoding="utf-8"), str(path))
