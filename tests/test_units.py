"""Durations on the CLI: values computed by hand."""

from __future__ import annotations

import pytest
from jouleflow.units import DurationError, format_duration, iso_utc, parse_duration, parse_duration_list


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5s", 5.0),
        ("250ms", 0.25),
        ("1.5min", 90.0),
        ("2h", 7200.0),
        ("100us", 1e-4),
        ("100µs", 1e-4),
        ("0.5 s", 0.5),
        (" 3ms ", 0.003),
        ("1e3ms", 1.0),
        (".5s", 0.5),
        ("10 seconds", 10.0),
        ("2 minutes", 120.0),
        ("5S", 5.0),
        ("0s", 0.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds, rel=1e-12)


@pytest.mark.parametrize("text", ["5", "abc", "5 parsecs", "", "-5s", "5s5", "ms", "5.5.5s"])
def test_parse_duration_rejects_and_quotes_the_value(text: str) -> None:
    with pytest.raises(DurationError) as info:
        parse_duration(text, what="--latency-target")
    assert "--latency-target" in str(info.value)
    assert repr(text) in str(info.value)


def test_bare_number_says_unit_is_missing() -> None:
    with pytest.raises(DurationError, match="no unit"):
        parse_duration("50")


def test_unknown_unit_is_named() -> None:
    with pytest.raises(DurationError, match="'fortnights'"):
        parse_duration("2fortnights")


def test_non_string_rejected() -> None:
    with pytest.raises(DurationError):
        parse_duration(5)  # type: ignore[arg-type]


def test_parse_duration_list() -> None:
    assert parse_duration_list("50ms,100ms,250ms") == pytest.approx([0.05, 0.1, 0.25])
    assert parse_duration_list("10s, 1min") == pytest.approx([10.0, 60.0])


@pytest.mark.parametrize("text", ["", "50ms,,100ms", "50ms,x", "50ms,100"])
def test_parse_duration_list_rejects(text: str) -> None:
    with pytest.raises(DurationError):
        parse_duration_list(text, what="--deadlines")


def test_list_error_names_bad_entry() -> None:
    with pytest.raises(DurationError, match="'fast'"):
        parse_duration_list("50ms,fast", what="--deadlines")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.05, "50 ms"), (3.63, "3.63 s"), (90.0, "1.5 min"), (7200.0, "2 h"), (1e-4, "100 µs")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_bare_unit_reads_a_plain_number_in_that_unit() -> None:
    assert parse_duration("20", bare_unit="s") == 20.0
    assert parse_duration("1.5e1", bare_unit="s") == 15.0
    assert parse_duration("500ms", bare_unit="s") == pytest.approx(0.5)
    with pytest.raises(DurationError, match="unknown unit"):
        parse_duration("20 parsecs", bare_unit="s")
    with pytest.raises(DurationError, match="'-20'"):  # negative: refused with or without a unit
        parse_duration("-20", bare_unit="s")


def test_iso_utc() -> None:
    assert iso_utc(1795319581.2230291) == "2026-11-22T03:53:01Z"
    assert iso_utc(0) == "1970-01-01T00:00:00Z"
    assert iso_utc(None) is None
