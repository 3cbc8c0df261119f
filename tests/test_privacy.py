"""`mask_pii`: emails and phone numbers are masked; years, durations and titles are not."""

from __future__ import annotations

import pytest

from chatbot.serving.privacy import mask_pii


@pytest.mark.parametrize(
    "text",
    [
        "ann@example.com",
        "Ann.Lee+movies@mail.example.co.uk",
        "first_last-99@sub.domain.org",
    ],
)
def test_emails_are_masked(text: str) -> None:
    assert mask_pii(f"write to {text}, thanks") == "write to [email], thanks"


@pytest.mark.parametrize(
    "phone",
    [
        "555-1234",
        "555 123 4567",
        "555.123.4567",
        "(555) 123-4567",
        "+1 (555) 123-4567",
        "+1-555-123-4567",
        "+44 20 7946 0958",
        "+33 1 23 45 67 89",
        "0049 30 1234567",
        "020 7946 0958",
        "5551234567",
        "+445551234567",
        "555-1995",
    ],
)
def test_phone_numbers_are_masked(phone: str) -> None:
    assert mask_pii(f"call me on {phone} tonight") == "call me on [phone] tonight"
    assert mask_pii(f"{phone}.") == "[phone]."


@pytest.mark.parametrize(
    "text",
    [
        "Something from 1995 please",
        "under 2 hours",
        "a movie of 90 minutes, rated 8.5/10",
        "films from 1990-2000",
        "1990 - 2000",
        "the 1980 1990 2000 decades",
        "released on 2019-05-12",
        "top 100 1995 films",
        "pi is 3.14159265",
        "imdb tt1632708",
        "Blade Runner 2049 (2017)",
        "Apollo 13 (1995) and 2001: A Space Odyssey (1968)",
        "1917 (2019)",
        "I watched 12 movies in 3 days",
        "it costs $1,000,000",
        "",
    ],
)
def test_non_pii_numbers_are_kept(text: str) -> None:
    assert mask_pii(text) == text


def test_mixed_text() -> None:
    text = "I'm Ann (ann@example.com, +1 555 123 4567) and I loved Heat (1995) at 2 hours 50"
    assert mask_pii(text) == "I'm Ann ([email], [phone]) and I loved Heat (1995) at 2 hours 50"


def test_idempotent() -> None:
    once = mask_pii("ann@example.com 555-123-4567")
    assert mask_pii(once) == once == "[email] [phone]"
