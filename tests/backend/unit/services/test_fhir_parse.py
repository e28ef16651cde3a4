from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from careledger.errors import CareLedgerError
from careledger.services import fhir
from careledger.services.fhir import MAX_BODY_BYTES, FhirInvalid, parse_json, reference_parse_json


def _refusal(body: bytes, **limits: int) -> FhirInvalid:
    with pytest.raises(FhirInvalid) as caught:
        parse_json(body, **limits)
    return caught.value


def test_parse_json_returns_object_with_exact_decimals() -> None:
    parsed = parse_json(b'{"resourceType":"Observation","valueQuantity":{"value":1.50},"n":2}')
    value = parsed["valueQuantity"]["value"]
    assert isinstance(value, Decimal) and str(value) == "1.50"
    assert parsed["n"] == 2 and isinstance(parsed["n"], int)


def test_parse_json_ignores_utf8_byte_order_mark() -> None:
    assert parse_json(b'\xef\xbb\xbf{"resourceType":"Patient"}') == {"resourceType": "Patient"}


def test_parse_json_refuses_malformed_json() -> None:
    error = _refusal(b'{"resourceType": "Patient",\n "active": }')
    assert error.code == "structure"
    assert "line 2 column" in str(error)


def test_parse_json_refuses_invalid_utf8() -> None:
    error = _refusal(b'{"name": "caf\xe9"}')
    assert error.code == "structure"
    assert "UTF-8" in str(error) and "byte 13" in str(error)


def test_parse_json_refuses_duplicate_keys() -> None:
    error = _refusal(b'{"resourceType":"Patient","gender":"male","gender":"female"}')
    assert error.code == "structure"
    assert 'duplicate key "gender"' in str(error)


def test_parse_json_refuses_duplicate_keys_in_nested_objects() -> None:
    assert _refusal(b'{"a":[{"b":1,"b":1}]}').code == "structure"


@pytest.mark.parametrize(
    ("body", "kind"), [(b"[]", "an array"), (b'"x"', "a string"), (b"3", "a number"), (b"null", "null")]
)
def test_parse_json_refuses_non_object_top_level(body: bytes, kind: str) -> None:
    error = _refusal(body)
    assert error.code == "structure"
    assert kind in str(error)


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_parse_json_refuses_nan_and_infinity(constant: bytes) -> None:
    error = _refusal(b'{"valueDecimal": ' + constant + b"}")
    assert error.code == "structure"
    assert "not a JSON number" in str(error)


@pytest.mark.parametrize(("opening", "closing"), [(b"[", b"]"), (b'{"a":', b"}")])
def test_parse_json_refuses_10000_deep_nesting(
    opening: bytes, closing: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = b'{"x":' + opening * 10_000 + b"1" + closing * 10_000 + b"}"

    def never(_: str) -> Any:
        raise AssertionError("the JSON parser ran: the depth is checked before it recurses")

    monkeypatch.setattr(fhir._DECODER, "decode", never)
    error = _refusal(body)
    assert error.code == "too-costly"
    assert "deeper than 64" in str(error)


def test_parse_json_accepts_nesting_at_the_limit() -> None:
    body = b'{"a":' + b"[" * 31 + b"1" + b"]" * 31 + b',"b":{}}'  # the object and 31 arrays: 32 levels
    assert parse_json(body, max_depth=32)["b"] == {}
    assert _refusal(body, max_depth=31).code == "too-costly"


def test_parse_json_ignores_brackets_inside_strings() -> None:
    text = '"[[[[{{{{ \\" ]]]]"'
    assert parse_json(b'{"div":' + text.encode() + b"}", max_depth=1)["div"] == '[[[[{{{{ " ]]]]'


def test_parse_json_refuses_5mb_string_without_echoing_it() -> None:
    body = b'{"resourceType":"Binary","data":"' + b"A" * 5_000_000 + b'"}'
    error = _refusal(body)
    assert error.code == "too-long"
    assert str(error) == f"body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}"


def test_parse_json_refuses_5mb_top_level_string_without_echoing_it() -> None:
    error = _refusal(b'"' + b"A" * 5_000_000 + b'"', max_bytes=6_000_000)
    assert error.code == "structure"
    assert len(str(error)) < 100


def test_parse_json_refuses_unterminated_5mb_string_without_rescanning_it() -> None:
    text = '{"a":"' + '\\"' * 2_500_000
    error = _refusal(text.encode(), max_bytes=6_000_000)
    assert error.code == "structure"
    assert "Unterminated string" in str(error) and len(str(error)) < 150
    # Linear by construction: the string scan matches the unterminated string once, to the end,
    # instead of failing and starting again at each of its 2.5 million escaped quotes.
    assert [m.span() for m in fhir._STRING_OR_REST.finditer(text)] == [(1, 4), (5, len(text))]


def test_parse_json_refuses_lone_surrogate_escape() -> None:
    error = _refusal(b'{"name":"\\ud800x"}')
    assert error.code == "structure"
    assert "surrogate" in str(error)


def test_parse_json_accepts_paired_surrogate_escape() -> None:
    assert parse_json(b'{"name":"\\ud83d\\ude00"}')["name"] == "\U0001f600"


def test_parse_json_refuses_an_exponent_no_decimal_can_hold() -> None:
    # Decimal() raised InvalidOperation (no ValueError) here: the gateway answered 500
    refusal = _refusal(b'{"v": 1e' + b"9" * 40 + b"}")
    assert refusal.code == "structure"
    assert "too large" in str(refusal)


def test_parse_json_refuses_integer_too_large_for_python() -> None:
    assert _refusal(b'{"n":' + b"9" * 5000 + b"}").code == "structure"


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b'{"a":1,"a":2}',
        b"\xff",
        b"[" * 100,
        b'{"a":NaN}',
        b'{"k' + b"x" * 100_000 + b'":1,"k' + b"x" * 100_000 + b'":2}',
    ],
)
def test_parse_json_refusal_is_one_short_line(body: bytes) -> None:
    error = _refusal(body)
    assert isinstance(error, CareLedgerError)
    assert "\n" not in str(error) and "Traceback" not in str(error)
    assert len(str(error)) <= 200


# --- the fast parser against the reference parser ------------------------------------------

_JSON_TOKENS = st.sampled_from(
    [
        b"{", b"}", b"[", b"]", b",", b":", b'"a"', b'"b"', b'"\\u00e9"', b'"\\ud800"', b'"\\ud83d\\ude00"',
        b'"\\/"', b'"\\x"', b'"\x01"', b"1", b"-0", b"1.50", b"1e400", b"01", b"1.", b"NaN", b"-Infinity",
        b"true", b"null", b" ", b"\t", b"\n", b"\x0c", b"\xc3\xa9", b"\xff", b"9" * 4301, b"\xef\xbb\xbf",
    ]
)  # fmt: skip
_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=6)
    | st.decimals(allow_nan=False, allow_infinity=False).map(str).map(Decimal),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=12,
)


def _outcome(body: bytes, max_depth: int, parse: Any) -> tuple[str, str]:
    try:
        return ("value", repr(parse(body, max_depth=max_depth)))  # repr: 1.50 is not 1.5, 1 is not 1.0
    except FhirInvalid as exc:
        return (exc.code, str(exc))


@settings(max_examples=400, deadline=None)
@given(st.lists(_JSON_TOKENS, max_size=14).map(b"".join), st.integers(1, 4))
def test_parse_json_answers_as_the_reference_on_token_soup(body: bytes, max_depth: int) -> None:
    assert _outcome(body, max_depth, parse_json) == _outcome(body, max_depth, reference_parse_json)


@settings(max_examples=300, deadline=None)
@given(_JSON_VALUES, st.integers(1, 6), st.booleans())
def test_parse_json_answers_as_the_reference_on_json(value: Any, max_depth: int, ascii_only: bool) -> None:
    body = json.dumps({"v": value}, ensure_ascii=ascii_only, default=str).encode()
    assert _outcome(body, max_depth, parse_json) == _outcome(body, max_depth, reference_parse_json)
