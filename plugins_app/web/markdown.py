"""Markdown assets rendered for the asset page: markdown-it-py with raw HTML
allowed (Ango's own Markdown templates are HTML: divs, spans with inline
style, tables of |placeholders|), then sanitized by nh3 (the Rust `ammonia`
crate) with an explicit allow-list, and shown in a sandboxed iframe
(`sandbox` without allow-scripts, `srcdoc`) so even a sanitizer miss cannot
run script in the hub's origin."""

from __future__ import annotations

import re

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

# CommonMark never makes emphasis of underscores inside a word
# (`IMG_2023_04.jpg`, `a_word_b` stay literal); keep that ruleset.
_RENDERER = MarkdownIt("commonmark", {"html": True, "linkify": False}).enable("table")

_TAGS = {
    # structure and text
    "p", "br", "hr", "div", "span", "blockquote", "pre", "code", "kbd", "samp",
    "h1", "h2", "h3", "h4", "h5", "h6",
    "em", "strong", "b", "i", "u", "s", "del", "ins", "mark", "small", "sub",
    "sup", "abbr",
    # lists and tables
    "ul", "ol", "li", "dl", "dt", "dd",
    "table", "thead", "tbody", "tfoot", "tr", "th", "td", "caption",
    "colgroup", "col",
    # links and images (their URLs are checked below)
    "a", "img", "figure", "figcaption", "details", "summary",
}  # fmt: skip

_ATTRIBUTES = {
    # Inline style is how Ango's templates lay out a document; its properties
    # are limited to _STYLE_PROPERTIES and its values checked in _attribute.
    "*": {"style", "title", "align"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
    "ol": {"start"},
    "abbr": {"title"},
}

_STYLE_PROPERTIES = {
    "color", "background-color", "font-weight", "font-style", "font-size",
    "font-family", "text-align", "text-decoration", "vertical-align",
    "white-space", "margin", "margin-top", "margin-bottom", "margin-left",
    "margin-right", "padding", "padding-top", "padding-bottom", "padding-left",
    "padding-right", "border", "border-top", "border-bottom", "border-left",
    "border-right", "border-collapse", "border-radius", "width", "max-width",
    "height", "display", "gap", "flex-direction", "justify-content",
    "align-items",
}  # fmt: skip

# Links: web and mail only (no javascript:, data:, vbscript:, file:).
_LINK_SCHEMES = {"http", "https", "mailto"}
# Images: a data: image or a same-origin path; no third-party fetches from a
# document a plugin wrote (tracking pixels, internal hosts).
_IMAGE_DATA = re.compile(r"^data:image/(png|jpeg|gif|webp);base64,", re.IGNORECASE)
# Anything in a style value that loads or evaluates something.
_STYLE_DANGER = re.compile(r"url\(|expression|javascript:|@import|\\|behavior", re.I)


def _attribute(tag: str, name: str, value: str) -> str | None:
    if name == "style" and _STYLE_DANGER.search(value):
        return None
    if tag == "a" and name == "href" and value.strip().lower().startswith("data:"):
        return None  # data:text/html would open a document of the plugin's making
    if tag == "img" and name == "src":
        same_origin = value.startswith("/") and not value.startswith("//")
        return value if same_origin or _IMAGE_DATA.match(value) else None
    return value


def sanitize_html(html: str) -> str:
    return nh3.clean(
        html,
        tags=_TAGS,
        # Dropped with their content, not just unwrapped.
        clean_content_tags={
            "script",
            "style",
            "iframe",
            "object",
            "embed",
            "svg",
            "math",
            "noscript",
            "template",
            "form",
            "textarea",
            "select",
            "title",
        },  # fmt: skip
        attributes=_ATTRIBUTES,
        attribute_filter=_attribute,
        url_schemes=_LINK_SCHEMES | {"data"},  # data: kept for <img> only (_attribute)
        filter_style_properties=_STYLE_PROPERTIES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def render_markdown(text: str) -> SafeString:
    # Safe to mark: every tag and attribute passed nh3's allow-list.
    return mark_safe(sanitize_html(_RENDERER.render(text)))  # noqa: S308


# The iframe's document: its own small style sheet, since the sandboxed frame
# does not see the hub's CSS. Returned as a plain str on purpose: the template
# escapes it into the `srcdoc` attribute.
_FRAME_STYLE = (
    "body{font:15px/1.5 system-ui,sans-serif;color:#1d2433;margin:12px 18px}"
    "table{border-collapse:collapse}td,th{border:1px solid #d9dee8;padding:2px 6px}"
    "img{max-width:100%}pre{background:#f4f6fa;padding:8px;overflow:auto}"
)


def markdown_document(text: str) -> str:
    body = str(render_markdown(text))
    return (
        '<!doctype html><html><head><meta charset="utf-8">'
        f"<style>{_FRAME_STYLE}</style></head><body>{body}</body></html>"
    )
