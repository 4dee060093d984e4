from __future__ import annotations

import copy
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugins_app.answers import (
    ValidationResult,
    unwrap_import_record,
    validate_answer,
)

ONTOLOGY: dict = {
    "tools": [
        {
            "schemaId": "face",
            "tool": "bounding-box",
            "title": "Face",
            "classifications": [
                {
                    "schemaId": "smiling",
                    "tool": "boolean",
                    "title": "Smiling",
                },
                {
                    "schemaId": "mood",
                    "tool": "radio",
                    "title": "Mood",
                    "options": [
                        {"value": "happy", "schemaId": "mood-happy"},
                        {"value": "sad", "schemaId": "mood-sad"},
                    ],
                    "classifications": [
                        {"schemaId": "why", "tool": "text", "title": "Why"},
                    ],
                },
            ],
        },
        {"schemaId": "coin", "tool": "bounding-box", "title": "Coin"},
        {"schemaId": "outline", "tool": "polygon", "title": "Outline"},
        {"schemaId": "tilted", "tool": "rotated-bounding-box", "title": "Tilted"},
        {"schemaId": "trail", "tool": "polyline", "title": "Trail"},
        {"schemaId": "nose", "tool": "point", "title": "Nose"},
        {"schemaId": "area", "tool": "segmentation", "title": "Area"},
        {"schemaId": "name", "tool": "ner", "title": "Name"},
        {"schemaId": "cell", "tool": "pdf", "title": "Cell"},
        {"schemaId": "mask", "tool": "brush", "title": "Mask"},
    ],
    "classifications": [
        {
            "schemaId": "scene",
            "tool": "radio",
            "title": "Scene",
            "options": [
                {"value": "indoor", "schemaId": "scene-indoor"},
                {"value": "outdoor", "schemaId": "scene-outdoor"},
            ],
        },
        {
            "schemaId": "tags",
            "tool": "checkbox",
            "title": "Tags",
            "options": [
                {"value": "blurry", "schemaId": "tags-blurry"},
                {"value": "dark", "schemaId": "tags-dark"},
            ],
        },
        {"schemaId": "notes", "tool": "text", "title": "Notes"},
        {"schemaId": "path", "tool": "tree-dropdown", "title": "Path"},
        {"schemaId": "rank", "tool": "rank", "title": "Rank"},
    ],
    "relations": [
        {"schemaId": "holds", "tool": "one-to-one", "title": "Holds"},
        {"schemaId": "covers", "tool": "one-to-many", "title": "Covers"},
        {"schemaId": "family", "tool": "group", "title": "Family"},
    ],
}

SIZE = (640, 480)
BOX = {"x": 10, "y": 20, "width": 100, "height": 50}


def face(**extra: object) -> dict:
    return {"schemaId": "face", "bounding-box": dict(BOX), **extra}


def valid_answer() -> dict:
    return {
        "externalId": "img-1.jpg",
        "objects": [
            face(
                objectId="o1",
                classifications=[
                    {"schemaId": "smiling", "answer": True},
                    {
                        "schemaId": "mood",
                        "answer": "happy",
                        "classifications": [{"schemaId": "why", "answer": "grin"}],
                    },
                ],
            ),
            {"schemaId": "coin", "objectId": "o2", "bounding-box": dict(BOX)},
            {"schemaId": "outline", "polygon": [[0, 0], [640, 0], [320, 480]]},
            {
                "schemaId": "tilted",
                "rotated-bounding-box": {**BOX, "rotation": -45.5},
            },
            {"schemaId": "trail", "polyline": [[1.5, 2], [3, 4]]},
            {"schemaId": "nose", "point": [640, 480]},
            {
                "schemaId": "area",
                "segmentation": {
                    "zones": [
                        {
                            "region": [[0, 0], [100, 0], [100, 100]],
                            "holes": [[[10, 10], [20, 10], [20, 20]]],
                        }
                    ]
                },
            },
            {"schemaId": "name", "ner": {"start": 0, "end": 4}},
            {
                "schemaId": "cell",
                "pdf": {
                    "x1": 1,
                    "y1": 2,
                    "x2": 3,
                    "y2": 4,
                    "width": 2,
                    "height": 2,
                    "pageNumber": 1,
                    "text": "total",
                },
            },
        ],
        "classifications": [
            {"schemaId": "scene", "answer": "indoor"},
            {"schemaId": "tags", "answer": ["blurry", "dark"]},
            {"schemaId": "notes", "answer": "ok"},
            {"schemaId": "path", "answer": ["Trunk / Branch 1 / Leaf"]},
            {"schemaId": "rank", "answer": {"anything": [1, 2]}},
        ],
        "relations": [
            {"schemaId": "holds", "from": "o1", "to": "o2"},
            {"schemaId": "covers", "from": "o1", "to": ["o2"]},
            {"schemaId": "family", "group": ["o1", "o2"]},
        ],
    }


def check(
    raw: object,
    *,
    mapping: list[dict] | None = None,
    image_size: tuple[int, int] | None = SIZE,
) -> ValidationResult:
    return validate_answer(
        raw, ontology=ONTOLOGY, mapping=mapping, image_size=image_size
    )


def with_objects(*objects: dict) -> dict:
    return {"objects": list(objects)}


def assert_problem(result: ValidationResult, path: str, *words: str) -> None:
    assert not result.ok
    matching = [p for p in result.problems if p.startswith(f"{path}:")]
    assert matching, f"no problem at {path!r}: {result.problems}"
    assert any(all(w in p for w in words) for p in matching), (
        f"no problem at {path!r} mentions {words}: {matching}"
    )


def test_it_accepts_a_valid_answer_and_normalises_it() -> None:
    raw = valid_answer()
    original = copy.deepcopy(raw)

    result = check(raw)

    assert result.ok, result.problems
    assert result.problems == []
    assert set(result.answer) == {"tools", "classifications", "relations"}
    assert len(result.answer["tools"]) == len(raw["objects"])
    first = result.answer["tools"][0]
    assert first["title"] == "Face"
    assert first["objectId"] == "o1"
    assert first["classifications"] == raw["objects"][0]["classifications"]
    assert result.answer["classifications"] == raw["classifications"]
    assert result.answer["relations"] == raw["relations"]
    assert raw == original  # the input is not mutated


def test_it_keeps_an_existing_title_and_reads_the_stored_tools_key() -> None:
    result = check({"tools": [face(title="Someone")]})

    assert result.ok, result.problems
    assert result.answer["tools"][0]["title"] == "Someone"


def test_it_treats_missing_lists_as_empty() -> None:
    result = check({"externalId": "x"})

    assert result.ok
    assert result.answer == {"tools": [], "classifications": [], "relations": []}


@pytest.mark.parametrize(
    ("raw", "kind"),
    [(None, "null"), ([], "array"), ("text", "string"), (3, "number")],
)
def test_it_rejects_a_response_that_is_not_an_object(raw: object, kind: str) -> None:
    result = check(raw)

    assert result.problems == [f"the response is not an object; got {kind}"]
    assert result.answer == {"tools": [], "classifications": [], "relations": []}


def test_it_requires_object_schema_ids_that_exist_among_the_tools() -> None:
    result = check(
        with_objects(
            face(),
            {"bounding-box": dict(BOX)},
            {"schemaId": 7, "bounding-box": dict(BOX)},
            {"schemaId": "scene", "bounding-box": dict(BOX)},
        )
    )

    assert not any(p.startswith("objects[0]") for p in result.problems)
    assert_problem(result, "objects[1]", "no schemaId")
    assert_problem(result, "objects[2]", "schemaId must be a string", "number")
    assert_problem(result, "objects[3]", "'scene'", "not a tool", "'face'")


def test_it_requires_exactly_one_geometry_matching_the_tool_type() -> None:
    triangle = [[0, 0], [10, 0], [0, 10]]
    result = check(
        with_objects(
            {"schemaId": "face", "polygon": triangle},
            {"schemaId": "face"},
            {"schemaId": "face", "bounding-box": dict(BOX), "point": [1, 1]},
            {"schemaId": "mask"},
        )
    )

    assert_problem(
        result,
        "objects[0]",
        "has geometry 'polygon' but tool 'Face' (schemaId 'face') is a bounding-box",
    )
    assert_problem(result, "objects[1]", "has no geometry", "'bounding-box'")
    assert_problem(result, "objects[2]", "several geometry keys")
    assert_problem(result, "objects[3]", "has no geometry", "brush")


@pytest.mark.parametrize(
    ("obj", "path", "reason"),
    [
        (
            {"schemaId": "face", "bounding-box": {"x": 1, "y": 1, "width": 5}},
            "objects[0].bounding-box",
            "missing 'height'",
        ),
        (
            {"schemaId": "face", "bounding-box": [1, 2, 3, 4]},
            "objects[0].bounding-box",
            "must be an object",
        ),
        (
            {"schemaId": "face", "bounding-box": {**BOX, "width": 0}},
            "objects[0].bounding-box",
            "width and height must be > 0",
        ),
        (
            {"schemaId": "face", "bounding-box": {**BOX, "height": -3}},
            "objects[0].bounding-box",
            "width and height must be > 0",
        ),
        (
            {"schemaId": "face", "bounding-box": {**BOX, "x": "10"}},
            "objects[0].bounding-box.x",
            "must be a number",
        ),
        (
            {"schemaId": "tilted", "rotated-bounding-box": {**BOX, "rotation": 181}},
            "objects[0].rotated-bounding-box",
            "rotation must be within [-180, 180]",
        ),
        (
            {"schemaId": "tilted", "rotated-bounding-box": dict(BOX)},
            "objects[0].rotated-bounding-box",
            "missing 'rotation'",
        ),
        (
            {"schemaId": "outline", "polygon": [[0, 0], [1, 1]]},
            "objects[0].polygon",
            "at least 3",
        ),
        (
            {"schemaId": "outline", "polygon": [[0, 0], [1, 1], [2]]},
            "objects[0].polygon[2]",
            "[x, y] pair",
        ),
        (
            {"schemaId": "outline", "polygon": {"x": 1}},
            "objects[0].polygon",
            "list of [x, y] pairs",
        ),
        (
            {"schemaId": "trail", "polyline": [[0, 0]]},
            "objects[0].polyline",
            "at least 2",
        ),
        (
            {"schemaId": "nose", "point": [1, 2, 3]},
            "objects[0].point",
            "[x, y] pair",
        ),
        (
            {"schemaId": "area", "segmentation": {"zones": []}},
            "objects[0].segmentation.zones",
            "non-empty list",
        ),
        (
            {"schemaId": "area", "segmentation": {"zones": [{"region": [[0, 0]]}]}},
            "objects[0].segmentation.zones[0].region",
            "at least 3",
        ),
        (
            {
                "schemaId": "area",
                "segmentation": {
                    "zones": [{"region": [[0, 0], [9, 0], [9, 9]], "holes": [[[1, 1]]]}]
                },
            },
            "objects[0].segmentation.zones[0].holes[0]",
            "at least 3",
        ),
        (
            {"schemaId": "name", "ner": {"start": 5, "end": 2}},
            "objects[0].ner",
            "0 <= start <= end",
        ),
        (
            {"schemaId": "name", "ner": {"start": -1, "end": 2}},
            "objects[0].ner",
            "0 <= start <= end",
        ),
        (
            {
                "schemaId": "cell",
                "pdf": {
                    "x1": 1,
                    "y1": 2,
                    "x2": 3,
                    "y2": 4,
                    "width": 2,
                    "height": 2,
                    "pageNumber": 1,
                },
            },
            "objects[0].pdf.text",
            "must be a string",
        ),
        (
            {"schemaId": "cell", "pdf": {"text": "x"}},
            "objects[0].pdf",
            "missing 'x1'",
        ),
    ],
)
def test_it_checks_the_geometry_shape_for_each_type(
    obj: dict, path: str, reason: str
) -> None:
    assert_problem(check(with_objects(obj)), path, reason)


@pytest.mark.parametrize(
    ("obj", "path"),
    [
        (face(**{"bounding-box": {**BOX, "x": math.nan}}), "objects[0].bounding-box.x"),
        (
            face(**{"bounding-box": {**BOX, "width": math.inf}}),
            "objects[0].bounding-box.width",
        ),
        (
            {"schemaId": "nose", "point": [1, -math.inf]},
            "objects[0].point[1]",
        ),
        (
            {"schemaId": "outline", "polygon": [[0, 0], [1, 1], [math.nan, 2]]},
            "objects[0].polygon[2][0]",
        ),
        (face(**{"bounding-box": {**BOX, "y": True}}), "objects[0].bounding-box.y"),
        ({"schemaId": "name", "ner": {"start": 0, "end": False}}, "objects[0].ner.end"),
        (face(**{"bounding-box": {**BOX, "x": 10**400}}), "objects[0].bounding-box.x"),
    ],
)
def test_it_rejects_non_finite_numbers_and_booleans(obj: dict, path: str) -> None:
    result = check(with_objects(obj))

    assert not result.ok
    assert any(p.startswith(f"{path}:") for p in result.problems), result.problems


@pytest.mark.parametrize(
    ("obj", "path"),
    [
        (face(**{"bounding-box": {**BOX, "x": -1}}), "objects[0].bounding-box"),
        (face(**{"bounding-box": {**BOX, "x": 600}}), "objects[0].bounding-box"),
        (face(**{"bounding-box": {**BOX, "y": 431}}), "objects[0].bounding-box"),
        ({"schemaId": "nose", "point": [641, 10]}, "objects[0].point"),
        ({"schemaId": "nose", "point": [10, -0.5]}, "objects[0].point"),
        (
            {"schemaId": "outline", "polygon": [[0, 0], [700, 0], [10, 10]]},
            "objects[0].polygon[1]",
        ),
        (
            {"schemaId": "trail", "polyline": [[0, 0], [10, 481]]},
            "objects[0].polyline[1]",
        ),
        (
            {
                "schemaId": "area",
                "segmentation": {"zones": [{"region": [[0, 0], [9, 0], [9, 999]]}]},
            },
            "objects[0].segmentation.zones[0].region[2]",
        ),
        (
            {
                "schemaId": "tilted",
                "rotated-bounding-box": {
                    "x": 600,
                    "y": 10,
                    "width": 100,
                    "height": 10,
                    "rotation": 0,
                },
            },
            "objects[0].rotated-bounding-box",
        ),
    ],
)
def test_it_checks_shapes_lie_inside_the_image(obj: dict, path: str) -> None:
    assert_problem(check(with_objects(obj)), path, "outside the 640x480 image")
    assert check(with_objects(obj), image_size=None).ok


def test_it_allows_a_tiny_tolerance_at_the_image_border() -> None:
    box = {"x": 0, "y": 0, "width": 640 + 1e-9, "height": 480}

    assert check(with_objects(face(**{"bounding-box": box}))).ok
    assert check(with_objects({"schemaId": "nose", "point": [-1e-9, 480]})).ok


def test_it_allows_a_rotated_box_whose_corners_leave_the_image() -> None:
    box = {"x": 600, "y": 10, "width": 60, "height": 10, "rotation": 90}

    assert check(with_objects({"schemaId": "tilted", "rotated-bounding-box": box})).ok


def test_it_checks_nested_classifications_belong_to_the_tool() -> None:
    result = check(
        with_objects(
            face(classifications=[{"schemaId": "scene", "answer": "indoor"}]),
            face(classifications={"schemaId": "smiling"}),
            face(
                classifications=[
                    {
                        "schemaId": "mood",
                        "answer": "happy",
                        "classifications": [{"schemaId": "smiling", "answer": True}],
                    }
                ]
            ),
            face(classifications=[{"schemaId": "smiling", "answer": "yes"}]),
        )
    )

    assert_problem(
        result, "objects[0].classifications[0]", "'scene'", "tool 'Face'", "'smiling'"
    )
    assert_problem(result, "objects[1].classifications", "must be a list")
    assert_problem(
        result,
        "objects[2].classifications[0].classifications[0]",
        "'smiling'",
        "classification 'Mood'",
    )
    assert_problem(
        result, "objects[3].classifications[0].answer", "true or false", "'Smiling'"
    )


@pytest.mark.parametrize(
    ("classification", "reason"),
    [
        ({"schemaId": "scene", "answer": "garden"}, "'garden' is not an option"),
        ({"schemaId": "scene", "answer": ["indoor"]}, "must be a string"),
        ({"schemaId": "scene"}, "has no answer"),
        ({"schemaId": "tags", "answer": "blurry"}, "list of strings"),
        ({"schemaId": "tags", "answer": ["blurry", 3]}, "list of strings"),
        ({"schemaId": "tags", "answer": ["sharp"]}, "'sharp' not among the options"),
        ({"schemaId": "notes", "answer": 12}, "must be a string"),
        ({"schemaId": "path", "answer": "Trunk"}, "list of strings"),
    ],
)
def test_it_checks_classification_answers_fit_the_type(
    classification: dict, reason: str
) -> None:
    result = check({"classifications": [classification]})

    path = "classifications[0].answer" if "answer" in classification else ""
    assert_problem(result, path or "classifications[0]", reason)


def test_it_accepts_any_answer_for_unknown_classification_types() -> None:
    result = check({"classifications": [{"schemaId": "rank", "answer": [None, 1.5]}]})

    assert result.ok, result.problems


def test_it_accepts_an_empty_checkbox_answer() -> None:
    assert check({"classifications": [{"schemaId": "tags", "answer": []}]}).ok


def test_it_requires_top_level_classifications_from_the_ontology() -> None:
    result = check(
        {
            "classifications": [
                {"schemaId": "smiling", "answer": True},
                {"answer": "indoor"},
                "scene",
            ]
        }
    )

    assert_problem(
        result, "classifications[0]", "'smiling'", "not a classification", "'scene'"
    )
    assert_problem(result, "classifications[1]", "no schemaId")
    assert_problem(result, "classifications[2]", "must be an object", "string")


def test_it_checks_relations() -> None:
    objects = [face(objectId="o1"), face(objectId="o2")]
    result = check(
        {
            "objects": objects,
            "relations": [
                {"schemaId": "holds", "from": "o1", "to": "o2"},
                {"schemaId": "nope", "from": "o1", "to": "o2"},
                {"schemaId": "holds", "from": "o1"},
                {"schemaId": "holds", "from": "o1", "to": "ghost"},
                {"schemaId": "family", "group": "o1"},
                {"schemaId": "family"},
                {"schemaId": "family", "group": ["o1", "o9"]},
                {"schemaId": "holds", "from": "o1", "to": ["o2"]},
                {"schemaId": "covers", "from": "o1", "to": ["o2", "o3"]},
            ],
        }
    )

    assert not any(p.startswith("relations[0]") for p in result.problems)
    assert_problem(result, "relations[1]", "'nope'", "not a relation", "'holds'")
    assert_problem(result, "relations[2]", "missing 'to'")
    assert_problem(result, "relations[3].to", "'ghost'", "not the objectId of any")
    assert_problem(result, "relations[4].group", "non-empty list")
    assert_problem(result, "relations[5]", "missing 'group'")
    assert_problem(result, "relations[6].group[1]", "'o9'", "not the objectId")
    assert_problem(result, "relations[7].to", "objectId string")
    assert_problem(result, "relations[8].to[1]", "'o3'", "not the objectId")


def test_it_requires_unique_object_ids() -> None:
    result = check(
        with_objects(face(objectId="a"), face(objectId="b"), face(objectId="a"))
    )

    assert result.problems == [
        "objects[2]: objectId 'a' is already used by objects[0]",
    ]


def test_it_rejects_object_ids_that_are_not_strings() -> None:
    result = check(with_objects(face(objectId=["a"])))

    assert_problem(result, "objects[0]", "objectId must be a non-empty string")


@pytest.mark.parametrize("key", ["objects", "tools", "classifications", "relations"])
def test_it_requires_the_answer_lists_to_be_lists(key: str) -> None:
    result = check({key: {"schemaId": "face"}})

    assert result.problems == [f"{key}: must be a list; got object"]


def test_it_reports_items_of_the_object_list_that_are_not_objects() -> None:
    result = check(with_objects(face(), 42))

    assert_problem(result, "objects[1]", "must be an object", "number")
    assert len(result.answer["tools"]) == 1


def test_it_restricts_schema_ids_to_the_run_mapping() -> None:
    mapping = [
        {"schemaId": "face", "modelClass": "person"},
        {"schemaId": "scene", "modelClass": "place"},
    ]
    raw = {
        "objects": [face(), {"schemaId": "coin", "bounding-box": dict(BOX)}],
        "classifications": [
            {"schemaId": "scene", "answer": "indoor"},
            {"schemaId": "notes", "answer": "hi"},
        ],
    }

    result = check(raw, mapping=mapping)

    assert len(result.problems) == 2
    assert_problem(result, "objects[1]", "'Coin'", "not mapped for this run")
    assert_problem(result, "classifications[1]", "'Notes'", "not mapped for this run")
    assert check(raw, mapping=None).ok
    assert check(raw, mapping=[]).ok


def test_it_caps_the_problem_list() -> None:
    result = check(with_objects(*[{"schemaId": "nope"} for _ in range(40)]))

    assert len(result.problems) == 51
    assert result.problems[-1] == "… and 30 more problems"


def test_it_tolerates_a_malformed_ontology() -> None:
    for ontology in ({}, {"tools": None}, {"tools": [None, {"schemaId": 3}]}):
        result = validate_answer(
            valid_answer(), ontology=ontology, mapping=None, image_size=SIZE
        )
        assert_problem(result, "objects[0]", "not a tool", "defines none")


json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.text(max_size=20), children, max_size=5)
    ),
    max_leaves=30,
)
answer_key = st.sampled_from(
    [
        "objects",
        "tools",
        "classifications",
        "relations",
        "schemaId",
        "objectId",
        "answer",
        "from",
        "to",
        "group",
        "zones",
        "region",
        "holes",
        "x",
        "y",
        "width",
        "height",
        "rotation",
        "start",
        "end",
        *(tool["schemaId"] for tool in ONTOLOGY["tools"]),
        *(tool["tool"] for tool in ONTOLOGY["tools"]),
        "scene",
        "tags",
        "holds",
        "family",
    ]
)
# Biased towards the real keys and ids so the fuzzing reaches the deep checks.
answer_like = st.recursive(
    json_like | answer_key,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(answer_key | st.text(max_size=5), children, max_size=6)
    ),
    max_leaves=60,
)


@settings(max_examples=300, deadline=None)
@given(
    raw=answer_like,
    mapping=st.none() | json_like,
    image_size=st.none() | st.tuples(st.integers(), st.integers()) | json_like,
)
def test_it_never_raises_for_arbitrary_input(
    raw: object, mapping: object, image_size: object
) -> None:
    result = validate_answer(
        raw,
        ontology=ONTOLOGY,
        mapping=mapping,  # type: ignore[arg-type]
        image_size=image_size,  # type: ignore[arg-type]
    )

    assert isinstance(result, ValidationResult)
    assert set(result.answer) == {"tools", "classifications", "relations"}
    assert all(isinstance(p, str) for p in result.problems)
    assert len(result.problems) <= 51
    assert result.ok == (not result.problems)


@settings(max_examples=100, deadline=None)
@given(ontology=json_like, raw=json_like)
def test_it_never_raises_for_an_arbitrary_ontology(
    ontology: object, raw: object
) -> None:
    bad_ontology: dict = ontology  # type: ignore[assignment]
    validate_answer(raw, ontology=bad_ontology, mapping=None, image_size=SIZE)


def test_it_unwraps_flat_and_wrapped_import_records() -> None:
    answer = {"objects": [face()], "classifications": [], "relations": []}

    assert unwrap_import_record({"externalId": "a.jpg", "answer": answer}) == (
        "a.jpg",
        answer,
    )
    assert unwrap_import_record({"externalId": "b.jpg", **answer}) == (
        "b.jpg",
        answer,
    )
    assert unwrap_import_record({"tools": []}) == (None, {"tools": []})
    assert unwrap_import_record({"externalId": 12, "answer": None}) == ("12", None)
    assert unwrap_import_record([1, 2]) == (None, [1, 2])
    assert unwrap_import_record(None) == (None, None)


def test_it_validates_an_unwrapped_import_record() -> None:
    record = {"externalId": "img-1.jpg", "answer": valid_answer()}

    external_id, answer = unwrap_import_record(record)

    assert external_id == "img-1.jpg"
    assert check(answer).ok
