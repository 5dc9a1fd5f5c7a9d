"""Phone numbers: E.164 normalisation, the formats CRMs store numbers in, and log masking."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache

import phonenumbers

__all__ = [
    "by_region",
    "mask",
    "matching_numbers",
    "national_digits",
    "region_of",
    "same_number",
    "stored_formats",
    "to_e164",
]

_NOT_NUMBERS = {"anonymous", "restricted", "unknown", "private", "blocked", "unavailable"}


_E164_MEMO: dict[tuple[str, str | None], str | None] = {}
_E164_MEMO_MAX = 65536


def to_e164(value: str | None, default_region: str | None = None) -> str | None:
    """Normalise ``value`` to E.164 (memoised: see :func:`_to_e164`)."""
    if value is None:
        return None
    key = (value, default_region)
    try:
        return _E164_MEMO[key]
    except KeyError:
        pass
    normalised = _to_e164(value, default_region)
    if len(_E164_MEMO) >= _E164_MEMO_MAX:
        _E164_MEMO.clear()  # crude but bounded; numbers repeat within minutes, not days
    _E164_MEMO[key] = normalised
    if normalised is not None:
        # An E.164 number normalises to itself: remember that too, so the model's validator
        # (which sees the provider's already-normalised number) costs a dict look-up.
        _E164_MEMO[(normalised, None)] = normalised
    return normalised


def _to_e164(value: str, default_region: str | None) -> str | None:
    """Normalise ``value`` to E.164, or None when it is not a dialable number.

    ``default_region`` (ISO 3166 alpha-2, e.g. ``"US"``) reads national numbers; without it
    only international forms (``+44 20 ...``, ``0044...`` is not accepted) parse. A bare string
    of 11-15 digits is tried as international (Vonage sends ``441234567890``).
    """
    text = value.strip()
    if not text or text.lower() in _NOT_NUMBERS or ":" in text or "@" in text:
        return None
    candidates = [text]
    digits = re.sub(r"\D", "", text)
    if not text.startswith("+") and 11 <= len(digits) <= 15:
        candidates.append("+" + digits)
    for candidate in candidates:
        try:
            parsed = phonenumbers.parse(candidate, default_region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_possible_number(parsed):
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return None


def national_digits(e164: str) -> str:
    """The national significant number, digits only (``+14155550100`` -> ``4155550100``)."""
    parsed = phonenumbers.parse(e164, None)
    return phonenumbers.national_significant_number(parsed)


def stored_formats(e164: str) -> list[str]:
    """The forms a CRM commonly holds a number in, to probe with exact-match queries.

    E.164, the national and international formats, bare national digits, and for NANP
    numbers the 1-prefixed digits and ``415-555-0100`` / ``415.555.0100`` styles.
    """
    parsed = phonenumbers.parse(e164, None)
    nsn = phonenumbers.national_significant_number(parsed)
    fmt = phonenumbers.PhoneNumberFormat
    forms = [
        e164,
        phonenumbers.format_number(parsed, fmt.NATIONAL),
        phonenumbers.format_number(parsed, fmt.INTERNATIONAL),
        nsn,
        e164.lstrip("+"),
    ]
    if parsed.country_code == 1 and len(nsn) == 10:
        forms += [
            f"1{nsn}",
            f"{nsn[:3]}-{nsn[3:6]}-{nsn[6:]}",
            f"{nsn[:3]}.{nsn[3:6]}.{nsn[6:]}",
            f"+1 {nsn[:3]}-{nsn[3:6]}-{nsn[6:]}",
            f"1-{nsn[:3]}-{nsn[3:6]}-{nsn[6:]}",
        ]
    else:
        forms.append("0" + nsn)
    seen: dict[str, None] = {}
    for form in forms:
        seen.setdefault(form, None)
    return list(seen)


def same_number(stored: str | None, e164: str, default_region: str | None = None) -> bool:
    """True when a number as stored in a CRM is the same line as ``e164``."""
    if not stored:
        return False
    return to_e164(stored, default_region or region_of(e164)) == e164


@lru_cache(maxsize=65536)
def region_of(e164: str) -> str | None:
    """The region (ISO 3166 alpha-2) an E.164 number belongs to, as phonenumbers reads it."""
    return phonenumbers.region_code_for_number(phonenumbers.parse(e164, None))


def by_region(
    phones: Iterable[str], default_region: str | None = None
) -> dict[str | None, set[str]]:
    """``phones`` (E.164) grouped by the region their stored forms are read in, for
    :func:`matching_numbers`."""
    groups: dict[str | None, set[str]] = {}
    for phone in phones:
        groups.setdefault(default_region or region_of(phone), set()).add(phone)
    return groups


def matching_numbers(stored: str | None, groups: Mapping[str | None, set[str]]) -> list[str]:
    """The numbers of ``groups`` (see :func:`by_region`) that ``stored`` is the same line as:
    :func:`same_number` against many numbers at the cost of one normalisation per region."""
    if not stored:
        return []
    found = []
    for region, phones in groups.items():
        normalised = to_e164(stored, region)
        if normalised in phones:
            found.append(normalised)
    return found


def mask(number: str | None) -> str:
    """``+14155550100`` -> ``***0100``: enough for ops to tell calls apart, no more."""
    if not number:
        return ""
    digits = re.sub(r"\D", "", number)
    return "***" + digits[-4:] if len(digits) > 4 else "***"
