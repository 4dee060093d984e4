"""Type names Kili handlers import (`from kili.types import Label`)."""

from typing import Any

# A label as handlers receive it: {"id", "jsonResponse", "answer", "author", ...}
Label = dict[str, Any]
