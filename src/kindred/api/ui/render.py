"""The web UI's templates: Jinja2 with autoescaping on, so every value a template shows is
escaped unless it is markup made here (`Markup`, from a template or a filter below).

Templates live in `templates/`; each page and each fragment the live stream fetches is
one. Python builds the values they show (view data); the templates hold all markup.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from kindred.api.ui.times import instant, ms_text

__all__ = ["Markup", "fragment", "path_part", "render", "when"]


def when(ms: object) -> Markup:
    """An instant as a <time> element (kept on one line by the stylesheet); the raw number
    when it names no instant of the years 1970 to 9999, a dash for none."""
    if ms is None:
        return Markup("—")
    at = instant(ms)
    if at is None:
        return Markup("{}").format(ms)
    return Markup('<time datetime="{}">{}</time>').format(
        at.isoformat(timespec="milliseconds"), ms_text(ms)
    )


def path_part(value: object) -> str:
    """A value made safe to stand as one segment of a URL path."""
    return quote(str(value), safe="")


def _shown(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


@cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("kindred.api.ui", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters.update(when=when, ms_text=ms_text, path_part=path_part, shown=_shown)
    return env


def render(template: str, values: Mapping[str, Any]) -> Markup:
    """The template filled with `values` (every value escaped unless it is `Markup`)."""
    return Markup(_environment().get_template(template).render(values))


def fragment(template: str, macro: str, *args: object) -> Markup:
    """One macro of a template, called with `args`: the pieces a page and a JSON answer
    share (the live stream's items, an audience's connections)."""
    module = _environment().get_template(template).module
    return Markup(getattr(module, macro)(*args))
