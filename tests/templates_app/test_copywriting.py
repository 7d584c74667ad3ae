"""What the copy model is asked and how its answer is judged (no model involved)."""

from __future__ import annotations

from templates_app import copywriting
from templates_app.compose import Brand


def test_the_request_carries_tone_banned_words_and_each_budget() -> None:
    request = copywriting.copy_request(
        kind="billboard", variables={"product": "Lemonade", "offer": "2 for 1"},
        brand_tone="sunny and witty", banned_words=["cheap", "best ever"],
        fields=("headline", "cta"), limits={"headline": 42, "cta": 18})
    assert "sunny and witty" in request["system"]
    assert "cheap, best ever" in request["system"]
    assert "Lemonade" in request["prompt"] and "2 for 1" in request["prompt"]
    schema = request["response_schema"]
    assert schema["required"] == ["headline", "cta"]
    assert schema["properties"]["headline"]["maxLength"] == 42
    assert schema["properties"]["cta"]["maxLength"] == 18


def test_a_banned_word_is_a_misfit_even_when_the_copy_fits() -> None:
    found = copywriting.misfits(kind="billboard", formats=["digital-landscape"],
                                brand=Brand(), copy={"headline": "The Cheap Lemonade"},
                                banned_words=["cheap"])
    assert [(m.field, m.format) for m in found] == [("headline", "")]
    assert "banned word" in found[0].message
    assert copywriting.misfits(kind="billboard", formats=["digital-landscape"],
                               brand=Brand(), copy={"headline": "Cheapside lemonade"},
                               banned_words=["cheap"]) == []  # whole words only


def test_copy_too_long_for_a_box_names_the_format_and_tightens_the_budget() -> None:
    copy = {"headline": "Freshly squeezed Sicilian lemonade with mint, honey and a "
                        "little ginger, bottled every morning in small batches"}
    found = copywriting.misfits(kind="billboard", formats=["digital-portrait"],
                                brand=Brand(), copy=copy)
    assert found and found[0].field == "headline" and found[0].format == "digital-portrait"
    assert "1080×1920" in found[0].message
    limits = copywriting.tighter_limits({"headline": 200}, found, copy)
    assert limits["headline"] < len(copy["headline"])
    assert limits["headline"] <= found[0].chars


def test_an_answer_that_is_not_the_json_asked_for_is_refused() -> None:
    assert copywriting.parse_answer("not json", ("headline",)) is None
    assert copywriting.parse_answer('{"headline": ""}', ("headline",)) is None
    assert copywriting.parse_answer('["a"]', ("headline",)) is None
    assert copywriting.parse_answer('{"headline": " Hi "}', ("headline",)) == {"headline": "Hi"}
