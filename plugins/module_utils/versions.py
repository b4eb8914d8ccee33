# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Version numbers, read one way: NVIDIA drivers, CUDA, compute capabilities, vLLM tags, Python libraries.

* ``version_tuple("570.195.03")`` -> ``(570, 195, 3)``; ``version_tuple("0.8.5.post1")`` ->
  ``(0, 8, 5, 0, 1)`` (a post release sorts after its base); pieces without digits are skipped.
* ``compare(a, b)`` -> -1, 0 or 1, shorter versions padded with zeros (``"12.9" == "12.9.0"``);
  ``satisfies(a, op, b)`` for the operators of NVIDIA_REQUIRE_CUDA (``>=``, ``<=``, ``>``, ``<``, ``=``).
* ``parse_driver_version("580.159.04")`` -> ``(580, 159, 4)``, None for anything that is not an NVIDIA
  driver version; ``branch_of`` gives its branch as a three-digit string (``"580"``), the one type every
  module and role uses for branches.
* ``cuda_minor("12.9.1")`` -> ``"12.9"``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

_PIECE_RE = re.compile(r"^(post)?(\d+)")
_DRIVER_VERSION_RE = re.compile(r"^(\d{3})\.(\d{1,3})(?:\.(\d{1,3}))?$")
_CACHE = {}


def version_tuple(value):
    """The numeric pieces of a version; ``post<N>`` counts as ``0, N`` so that it sorts after its base."""
    text = str(value).strip()
    cached = _CACHE.get(text)
    if cached is not None:
        return cached
    parts = []
    for piece in text.lstrip("vV").split("."):
        match = _PIECE_RE.match(piece)
        if not match:
            continue
        if match.group(1):
            parts.extend([0, int(match.group(2))])
        else:
            parts.append(int(match.group(2)))
    result = tuple(parts)
    if len(_CACHE) < 4096:
        _CACHE[text] = result
    return result


def _padded(left, right):
    width = max(len(left), len(right))
    return left + (0,) * (width - len(left)), right + (0,) * (width - len(right))


def compare(left, right):
    """-1, 0 or 1 as ``left`` is older than, the same as, or newer than ``right`` (strings or tuples)."""
    a, b = _padded(left if isinstance(left, tuple) else version_tuple(left),
                   right if isinstance(right, tuple) else version_tuple(right))
    return (a > b) - (a < b)


_OPERATORS = {
    ">=": lambda c: c >= 0,
    "<=": lambda c: c <= 0,
    ">": lambda c: c > 0,
    "<": lambda c: c < 0,
    "=": lambda c: c == 0,
    "==": lambda c: c == 0,
}


def satisfies(left, op, right):
    """Whether ``left op right`` holds, e.g. ``satisfies("570.195.03", ">=", "570")``."""
    if op not in _OPERATORS:
        raise ValueError("unknown version operator %r" % op)
    return _OPERATORS[op](compare(left, right))


def parse_driver_version(version):
    """An NVIDIA driver version ``"580.159.04"`` as ``(580, 159, 4)``; None when it is not one."""
    if version is None:
        return None
    text = str(version).strip()
    if not _DRIVER_VERSION_RE.match(text):
        return None
    return version_tuple(text)


def branch_of(version):
    """Branch of a driver version (``"580.159.04"`` -> ``"580"``); None when it is not a driver version."""
    parsed = parse_driver_version(version)
    return None if parsed is None else "%03d" % parsed[0]


def cuda_minor(value):
    """``"12.9.1"`` -> ``"12.9"``, ``"13"`` -> ``"13.0"``; None for an empty value."""
    if not value:
        return None
    parts = str(value).split(".")
    return "%s.%s" % (parts[0], parts[1] if len(parts) > 1 else "0")
