"""Markdown assets rendered for the asset page, safely: markdown-it-py with raw
HTML disabled escapes every tag in the text, and its link check refuses
`javascript:`, `vbscript:`, `file:` and non-image `data:` URLs."""

from __future__ import annotations

from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

_RENDERER = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def render_markdown(text: str) -> SafeString:
    # Safe to mark: with html=False the renderer escapes all text and attributes.
    return mark_safe(_RENDERER.render(text))  # noqa: S308
