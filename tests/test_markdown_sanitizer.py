"""The Markdown asset sanitizer: Ango-style HTML templates render as HTML, and
what could run script, load a third-party resource or navigate is removed."""

from __future__ import annotations

import pytest

from plugins_app.web.markdown import markdown_document, render_markdown

# The shape of Ango's public Markdown plugin template: HTML blocks with inline
# style around a Markdown table of |column| placeholders (filled in by then).
ANGO_TEMPLATE = """<div style="display: flex; gap: 12px; font-family: Arial">
<span style="font-weight: bold; color: #1f5fbf">Invoice INV_2023_04</span>
<span style="color: gray">due 2024-01-31</span>
</div>

## Customer: ACME_Corp_EU

| Field | Value |
|---|---|
| IBAN | DE89 3704 0044 0532 0130 00 |
| file_name | scan_page_1.png |

<p align="center"><img src="/static/favicon.svg" alt="logo" width="32"></p>

Some *emphasis*, **strong**, `code_with_underscores` and a [link](https://example.com/a_b_c).
"""


def test_the_ango_template_shape_renders_as_html() -> None:
    html = str(render_markdown(ANGO_TEMPLATE))
    assert '<div style="display:flex;gap:12px;font-family:Arial">' in html
    assert '<span style="font-weight:bold;color:#1f5fbf">' in html
    assert '<span style="color:gray">' in html
    assert "<h2>Customer: ACME_Corp_EU</h2>" in html
    assert "<table>" in html and "<th>Field</th>" in html
    assert "<td>DE89 3704 0044 0532 0130 00</td>" in html
    assert '<img src="/static/favicon.svg" alt="logo" width="32">' in html
    assert '<p align="center">' in html
    assert "<em>emphasis</em>" in html and "<strong>strong</strong>" in html
    assert "<code>code_with_underscores</code>" in html
    assert (
        '<a href="https://example.com/a_b_c" rel="noopener noreferrer nofollow">'
        in html
    )
    # Underscores inside names stay literal, no emphasis.
    assert "INV_2023_04" in html and "scan_page_1.png" in html
    assert "<em>2023</em>" not in html and "<em>Corp</em>" not in html
    assert "&lt;div" not in html and "&lt;span" not in html  # not escaped


@pytest.mark.parametrize(
    ("payload", "forbidden"),
    [
        ("<script>alert(1)</script>after", ["<script", "alert"]),
        ('<img src="x" onerror="alert(1)">', ["onerror", "alert"]),
        ('<a href="javascript:alert(1)">x</a>', ["javascript:", "alert"]),
        ("[x](javascript:alert(1))", ["href"]),
        ('<a href=" JaVaScRiPt:alert(1)">x</a>', ["alert"]),
        ("<svg onload=alert(1)><circle r=1 /></svg>", ["<svg", "onload", "alert"]),
        (
            '<div style="width: expression(alert(1)); color: red">x</div>',
            ["expression", "alert"],
        ),
        ('<span style="background: url(https://evil.test/t.png)">x</span>', ["evil"]),
        ("<style>body{background:red}</style>text", ["<style", "background"]),
        ('<iframe src="https://evil.test/"></iframe>', ["<iframe", "evil"]),
        ('<object data="https://evil.test/x.swf"></object>', ["<object", "evil"]),
        ('<embed src="https://evil.test/x.swf">', ["<embed", "evil"]),
        (
            '<form action="https://evil.test/"><input name="p"><button>Go</button>'
            "</form>",
            ["<form", "evil", "<input", "<button"],
        ),
        ('<meta http-equiv="refresh" content="0;url=https://evil.test/">', ["<meta"]),
        (
            '<a href="data:text/html,<script>alert(1)</script>">x</a>',
            ["data:text/html", "<script"],
        ),
        ('<img src="https://evil.test/pixel.png">', ["evil"]),
        ('<img src="//evil.test/pixel.png">', ["evil"]),
        ('<p onclick="alert(1)">x</p>', ["onclick", "alert"]),
        ('<base href="https://evil.test/">', ["<base", "evil"]),
        ('<link rel="stylesheet" href="https://evil.test/x.css">', ["<link", "evil"]),
    ],
)
def test_xss_payloads_are_removed(payload: str, forbidden: list[str]) -> None:
    html = str(render_markdown(payload)).lower()
    for needle in forbidden:
        assert needle.lower() not in html, (payload, html)


def test_a_data_image_is_kept() -> None:
    html = str(render_markdown('<img src="data:image/png;base64,iVBORw0KGgo=">'))
    assert 'src="data:image/png;base64,iVBORw0KGgo="' in html


def test_the_frame_document_is_plain_text_for_the_template_to_escape() -> None:
    document = markdown_document("# Hi")
    assert not hasattr(document, "__html__")  # not a SafeString
    assert "<h1>Hi</h1>" in document
