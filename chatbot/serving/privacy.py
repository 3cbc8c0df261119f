"""Mask personal data (email addresses, phone numbers) before text is written anywhere.

    >>> mask_pii("mail me at ann.lee@example.com or call +1 (555) 123-4567")
    'mail me at [email] or call [phone]'

Phone numbers: 7 to 15 digits in groups joined by spaces, dots, dashes or parentheses
(`555-1234`, `(555) 123-4567`, `+44 20 7946 0958`, `0049 30 1234567`), or one unbroken run
of 10 to 15 digits (`5551234567`, `+445551234567`). Left alone: years (`1995`), durations
(`2 hours`), year ranges (`1990-2000`, `1990 2000 2010`), dates (`2019-05-12`), decimals
(`3.14159265`) and ids inside words (`tt1632708`). Masking errs towards hiding a number.
"""

from __future__ import annotations

import re

EMAIL = "[email]"
PHONE = "[phone]"

_EMAIL = re.compile(
    r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+",
)
# A run of digit groups: an optional "+" or "(", then digits with at most two separator
# characters between groups (") ", " - ", " (" ...). Validated by `_is_phone`.
_NUMBER_RUN = re.compile(r"(?<![\w+])(?:\+|\(\s?)?\d(?:[\d]|[ .\-()]{1,3}(?=[\d(]))*\d\)?(?![\w])")
_GROUPS = re.compile(r"\d+")
_YEAR = re.compile(r"(18|19|20)\d\d")
_ISO_DATE = re.compile(r"(18|19|20)\d\d[-./](0?[1-9]|1[0-2])[-./](0?[1-9]|[12]\d|3[01])")


def _is_phone(run: str) -> bool:
    groups = _GROUPS.findall(run)
    digits = sum(len(g) for g in groups)
    plus = run.startswith("+")
    if len(groups) == 1:  # no separators: only a long run (or "+" and a long run) is a phone
        return 10 <= digits <= 15 or (plus and 8 <= digits <= 15)
    if not 7 <= digits <= 15:
        return False
    if not plus and all(len(g) == 4 and _YEAR.fullmatch(g) for g in groups):
        return False  # "1990-2000", "1990 2000 2010"
    if not plus and _ISO_DATE.fullmatch(run.strip("()")):
        return False
    separators = set(re.sub(r"\d", "", run)) - {"+"}
    if len(groups) == 2 and separators == {"."}:
        return False  # "3.14159265" is a decimal
    # "top 100 1995 films": a number and a year side by side; "555-1995" stays a phone
    spaced_year = separators <= {" "} and any(_YEAR.fullmatch(g) for g in groups)
    return plus or len(groups) > 2 or not spaced_year


def _mask_phone(match: re.Match[str]) -> str:
    run = match.group(0)
    tail = ""
    if run.endswith(")") and run.count(")") > run.count("("):
        run, tail = run[:-1], ")"  # "(call 555-1234)": the ")" closes the sentence's bracket
    return PHONE + tail if _is_phone(run) else match.group(0)


def mask_pii(text: str) -> str:
    """`text` with email addresses replaced by "[email]" and phone numbers by "[phone]"."""
    if not text:
        return text
    text = _EMAIL.sub(EMAIL, text)
    return _NUMBER_RUN.sub(_mask_phone, text)
