"""`resource.Quantity` as kube-apiserver parses and prints it (k8s.io/apimachinery/pkg/api/resource).

`parse()` follows `ParseQuantity`: an optional sign, digits with an optional fraction, then one
suffix: binary (`Ki Mi Gi Ti Pi Ei`), decimal SI (`n u m "" k M G T P E`) or a decimal exponent
(`e3`, `E-2`). Anything else fails with the apimachinery error text, so `16GB` is refused exactly
as a real server refuses it, while `16G` and `16Gi` pass. Values finer than one nano are rounded up.

`canonical()` is `Quantity.String()`: what the server stores and answers with (`0.5` -> `500m`,
`1024Mi` -> `1Gi`, a JSON number `1` -> `"1"`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

ERR_FORMAT = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
ERR_NUMERIC = "unable to parse quantity's numeric part"
ERR_SUFFIX = "unable to parse quantity's suffix"

BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
DECIMAL_BY_EXPONENT = {v: k for k, v in DECIMAL.items()}
BINARY_BY_EXPONENT = {v: k for k, v in BINARY.items()}
BINARY_BY_EXPONENT[0] = ""
_EXPONENT = re.compile(r"^[eE][-+]?[0-9]+$")
_SUFFIX_CHARS = set("eEinumkKMGTP")
NANO = Fraction(1, 10 ** 9)


class QuantityError(ValueError):
    pass


@dataclass(frozen=True)
class Quantity:
    value: Fraction
    format: str  # "DecimalSI", "BinarySI" or "DecimalExponent"

    def is_integer(self) -> bool:
        return self.value.denominator == 1

    def __str__(self) -> str:
        return canonical_string(self)


def _split(text: str):
    """parseQuantityString: (sign, numerator digits, denominator digits, suffix)."""
    pos, end = 0, len(text)
    positive = True
    if pos < end and text[0] in "+-":
        positive = text[0] == "+"
        pos += 1
    start = pos
    while pos < end and text[pos].isdigit():
        pos += 1
    num = text[start:pos]
    denom = ""
    if pos < end and text[pos] == ".":
        pos += 1
        start = pos
        while pos < end and text[pos].isdigit():
            pos += 1
        denom = text[start:pos]
    suffix_start = pos
    while pos < end and text[pos] in _SUFFIX_CHARS:
        pos += 1
    if pos < end and text[pos] in "+-":
        pos += 1
    while pos < end and text[pos].isdigit():
        pos += 1
    if pos < end:
        raise QuantityError(ERR_FORMAT)
    return positive, num, denom, text[suffix_start:]


def parse(value: Any) -> Quantity:
    """A Quantity from its JSON form (a string, or a number as Go's decoder sees its literal)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise QuantityError(ERR_FORMAT)
    text = value.strip() if isinstance(value, str) else repr(value)
    if not text:
        raise QuantityError(ERR_FORMAT)
    if text == "0":
        return Quantity(Fraction(0), "DecimalSI")
    positive, num, denom, suffix = _split(text)
    if suffix in BINARY:
        base, exponent, fmt = 2, BINARY[suffix], "BinarySI"
    elif suffix in DECIMAL:
        base, exponent, fmt = 10, DECIMAL[suffix], "DecimalSI"
    elif _EXPONENT.match(suffix):
        base, exponent, fmt = 10, int(suffix[1:]), "DecimalExponent"
    else:
        raise QuantityError(ERR_SUFFIX)
    amount = Fraction(int(num or "0")) + (Fraction(int(denom), 10 ** len(denom)) if denom else 0)
    amount *= Fraction(base) ** exponent
    if amount and amount % NANO:  # round away from zero to whole nanos, as ParseQuantity does
        amount = (amount // NANO + 1) * NANO
    return Quantity(amount if positive else -amount, fmt)


def _decimal_parts(value: Fraction):
    """(mantissa, exponent) with exponent a multiple of 3, as large as possible without losing precision."""
    exponent = 0
    while value.denominator != 1:
        value *= 10
        exponent -= 1
    mantissa = value.numerator
    while mantissa and mantissa % 10 == 0:
        mantissa //= 10
        exponent += 1
    shift = exponent % 3
    return mantissa * 10 ** shift, exponent - shift


def canonical_string(quantity: Quantity) -> str:
    value, fmt = quantity.value, quantity.format
    if value == 0:
        return "0"
    if fmt == "BinarySI" and (-1024 < value < 1024 or value.denominator != 1):
        fmt = "DecimalSI"
    if fmt == "BinarySI":
        mantissa, exponent = value.numerator, 0
        while mantissa % 1024 == 0 and exponent < 60:
            mantissa //= 1024
            exponent += 10
        return f"{mantissa}{BINARY_BY_EXPONENT[exponent]}"
    mantissa, exponent = _decimal_parts(value)
    if fmt == "DecimalExponent":
        return f"{mantissa}" + (f"e{exponent}" if exponent else "")
    return f"{mantissa}{DECIMAL_BY_EXPONENT.get(exponent, f'e{exponent}')}"


def canonical(value: Any) -> str:
    return canonical_string(parse(value))


def go_repr(value: Any) -> str:
    """How a field error prints a `resource.Quantity` passed by value: Go's `%#v` of the struct that
    `ParseQuantity` builds (its fast path: an int64 mantissa and a decimal scale)."""
    text = value.strip() if isinstance(value, str) else repr(value)
    quantity = parse(value)
    positive, num, denom, suffix = _split(text)
    num = num.lstrip("0") or "0"
    if quantity.format == "BinarySI":
        mantissa, scale = int(num + denom) << BINARY[suffix] if not denom else 0, 0
        if denom:
            mantissa, scale = quantity.value.numerator, 0
    else:
        exponent = DECIMAL.get(suffix, 0) if quantity.format == "DecimalSI" else int(suffix[1:])
        mantissa, scale = int(num + denom), exponent - len(denom)
    if not positive:
        mantissa = -mantissa
    return (f"resource.Quantity{{i:resource.int64Amount{{value:{mantissa}, scale:{scale}}}, "
            f'd:resource.infDecAmount{{Dec:(*inf.Dec)(nil)}}, s:"", Format:"{quantity.format}"}}')
