"""edgekit.sizes: the size strings accepted by gates.max_size, and the human-readable form in reports."""

from __future__ import annotations

import pytest

from edgekit.sizes import format_size, parse_size


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0),
        (65536, 65536),
        (2048.0, 2048),
        ("65536", 65536),
        ("10B", 10),
        ("10 bytes", 10),
        ("64KB", 64_000),
        ("64kb", 64_000),
        ("64KiB", 65_536),
        ("64 kib", 65_536),
        ("  64KiB  ", 65_536),
        ("0.5MB", 500_000),
        (".5KB", 500),
        ("1MiB", 1_048_576),
        ("2GB", 2_000_000_000),
        ("1GiB", 1_073_741_824),
    ],
)
def test_parse_size_accepts_numbers_and_decimal_and_binary_units(value, expected):
    result = parse_size(value)

    assert result == expected
    assert isinstance(result, int)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (-1, "negative"),
        (-0.5, "negative"),
        (True, "True"),
        (False, "False"),
        ("12 parsecs", "12 parsecs"),
        ("64KX", "64KX"),
        ("", "expected a size"),
        ("KB", "expected a size"),
        ("-5KB", "-5KB"),
        ("1.2.3MB", "1.2.3MB"),
        ("1e3", "1e3"),
        (None, "None"),
    ],
)
def test_parse_size_rejects_bad_values_with_a_value_error_naming_them(value, fragment):
    with pytest.raises(ValueError) as excinfo:
        parse_size(value)

    assert fragment in str(excinfo.value)


def test_parse_size_error_lists_the_accepted_forms():
    with pytest.raises(ValueError) as excinfo:
        parse_size("12 parsecs")

    message = str(excinfo.value)
    assert "64KB" in message and "64KiB" in message and "0.5MB" in message
    assert "KiB" in message and "GiB" in message  # the unit list


@pytest.mark.parametrize("value", [float("inf"), "9" * 400 + "GB"])
def test_parse_size_rejects_infinite_sizes_with_value_error(value):
    with pytest.raises(ValueError):
        parse_size(value)


@pytest.mark.parametrize(
    ("n_bytes", "expected"),
    [
        (None, "-"),
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (65_536, "64.0 KiB"),
        (1024**2, "1.0 MiB"),
        (int(2.5 * 1024**2), "2.5 MiB"),
        (5 * 1024**3, "5120.0 MiB"),  # MiB is the largest unit
    ],
)
def test_format_size_uses_binary_units(n_bytes, expected):
    assert format_size(n_bytes) == expected


def test_format_size_of_a_parsed_size():
    assert format_size(parse_size("64KiB")) == "64.0 KiB"
    assert format_size(parse_size("64KB")) == "62.5 KiB"
