"""Keyed hashing (blind indexes) and masking of personal identifiers."""

from __future__ import annotations

import hashlib
import hmac
import re


def hash_identifier(value: str, secret: bytes) -> str:
    """HMAC-SHA256 hex digest of a normalised identifier (a NIK, a phone number)."""
    return hmac.new(secret, value.encode("ascii"), hashlib.sha256).hexdigest()


def identifier_digest(value: str, secret: bytes) -> bytes:
    """The same HMAC-SHA256 as 32 raw bytes: the DTSEN blind index (half the hex's size)."""
    return hmac.digest(secret, value.encode("ascii"), hashlib.sha256)


def digest_key(digest: bytes) -> int:
    """A digest's first 8 bytes as a signed 64-bit integer: a short key to index it by."""
    return int.from_bytes(digest[:8], "big", signed=True)


def mask_nik(nik: str) -> str:
    """Keep the region prefix and the serial: `3275********0001`."""
    if len(nik) != 16:
        return "*" * len(nik)
    return nik[:4] + "*" * 8 + nik[-4:]


def mask_phone(phone: str) -> str:
    """Keep the country/operator prefix and the last three digits: `+62812*****890`."""
    if len(phone) < 8:
        return "*" * len(phone)
    return phone[:6] + "*" * (len(phone) - 9) + phone[-3:]


_NIK_LIKE = re.compile(r"(?<!\d)(\d{4})[\d .\-]{8,12}?(\d{4})(?!\d)")
_PHONE_LIKE = re.compile(r"(?<![\d+])(\+?62|0)8\d[\d \-]{6,12}\d(?!\d)")


def redact_text(text: str) -> str:
    """Mask anything that looks like a NIK or an Indonesian phone number in free text."""
    text = _PHONE_LIKE.sub(lambda m: mask_phone(re.sub(r"[ \-]", "", m.group(0))), text)
    return _NIK_LIKE.sub(lambda m: m.group(1) + "*" * 8 + m.group(2), text)


# What the key fingerprint is the HMAC of; a new version of the label makes a new fingerprint.
FINGERPRINT_LABEL = b"rentan-bot pii fingerprint v1"


def key_fingerprint(secret: bytes) -> str:
    """HMAC-SHA256 of a fixed label under the key: tells keys apart without revealing them."""
    return hmac.new(secret, FINGERPRINT_LABEL, hashlib.sha256).hexdigest()
