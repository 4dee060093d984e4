"""Field types and the error body shared by every area of the JSON API."""

from __future__ import annotations

from typing import Annotated, Any

from ninja import Schema
from pydantic import AfterValidator, Field

from plugins_app.inputs import DB_ID_MAX, DB_INT_MAX, check_json

# Bounds in the schema itself, so an out-of-range number is a 422 naming the
# field (and the OpenAPI schema says so) instead of a database overflow.
DbId = Annotated[int, Field(ge=1, le=DB_ID_MAX)]
PageNumber = Annotated[int, Field(le=DB_INT_MAX)]


def _not_too_deep(value: Any) -> Any:
    check_json(value, what="The value")  # its ValueError becomes a 422
    return value


# A JSON object of any shape, nested at most HUB_MAX_JSON_DEPTH levels.
JsonObject = Annotated[dict[str, Any], AfterValidator(_not_too_deep)]


class ErrorOut(Schema):
    errors: dict[str, list[str]]


def page_slice(page: int, per_page: int, *, most: int) -> slice:
    """Rows of a 1-based page, per_page clamped to 1..most (a page below 1 is
    the first)."""
    per_page = max(1, min(per_page, most))
    start = (max(page, 1) - 1) * per_page
    return slice(start, start + per_page)
