"""An invoice project's ontology and labels, shaped like Kili's programmatic-QA
tutorial (objects IBAN and CURRENCY with their transcriptions): what the
bundled QA example (examples/hosted_qa/main.py) checks. Used by its tests, its
benchmark and `seed_demo`-style setups."""

from __future__ import annotations

from typing import Any

INVOICE_ONTOLOGY: dict[str, Any] = {
    "tools": [
        {
            "schemaId": "iban-box",
            "tool": "bounding-box",
            "title": "IBAN",
            "color": "#1971c2",
            "required": False,
            "classifications": [
                {"schemaId": "TRANSCRIPTION_JOB", "tool": "text", "title": "IBAN text"}
            ],
        },
        {
            "schemaId": "currency-box",
            "tool": "bounding-box",
            "title": "CURRENCY",
            "color": "#2f9e44",
            "required": False,
            "classifications": [
                {"schemaId": "TRANSCRIPTION_JOB_2", "tool": "text", "title": "Currency"}
            ],
        },
    ],
    "classifications": [],
    "relations": [],
}


def invoice_answer(iban: str, currency: str) -> dict[str, Any]:
    """A labeler's answer: one IBAN box and one currency box, transcribed."""

    def box(object_id: str, schema_id: str, job: str, text: str, x: int) -> dict:
        return {
            "objectId": object_id,
            "schemaId": schema_id,
            "bounding-box": {"x": x, "y": 10, "width": 100, "height": 20},
            "classifications": [{"schemaId": job, "answer": text}],
        }

    return {
        "tools": [
            box("iban-1", "iban-box", "TRANSCRIPTION_JOB", iban, 10),
            box("currency-1", "currency-box", "TRANSCRIPTION_JOB_2", currency, 200),
        ],
        "classifications": [],
        "relations": [],
    }
