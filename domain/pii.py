"""Keyed hashing (blind indexes) and masking of personal identifiers."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass


def hash_identifier(value: str, secret: bytes) -> str:
    """HMAC-SHA256 hex digest of a normalised identifier (a NIK, a phone number)."""
    return hmac.new(secret, value.encode("ascii"), hashlib.sha256).hexdigest()


def identifier_digest(value: str, secret: bytes) -> bytes:
    """The same HMAC-SHA256 as 32 raw bytes: the DTSEN blind index (half the hex's size)."""
    return hmac.digest(secret, value.encode("ascii"), hashlib.sha256)


def digest_key(digest: bytes) -> int:
    """A digest's first 8 bytes as a signed 64-bit integer: a short key to index it by."""
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass(frozen=True, slots=True)
class BlindIndex:
    """One identifier's HMAC-SHA256, computed once and carried whole to storage: the DTSEN table
    keeps the raw bytes (and their 64-bit key), applications and attempts keep the hex."""

    digest: bytes

    @classmethod
    def of(cls, value: str, secret: bytes) -> BlindIndex:
        """The blind index of a normalised identifier (a NIK's 16 digits)."""
        return cls(identifier_digest(value, secret))

    @classmethod
    def from_hex(cls, text: str) -> BlindIndex:
        """The index as stored in an application's `nik_hash`."""
        return cls(bytes.fromhex(text))

    @property
    def hex(self) -> str:
        """The 64-character form of application and attempt columns (`hash_identifier`'s)."""
        return self.digest.hex()

    @property
    def key(self) -> int:
        """The short key the DTSEN table is indexed by."""
        return digest_key(self.digest)


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


# What people put between the digits of a number they type or paste: spaces, dots, dashes,
# slashes, brackets, underscores, bars (never ":" or ",", which timestamps and lists use).
_SEP = r"[\s.\-/\\()\[\]_|]{0,3}"
# Sixteen digits, whatever stands between them.
_NIK_LIKE = re.compile(rf"(?<!\d)\d(?:{_SEP}\d){{15}}(?!\d)")
# An Indonesian mobile number: +62, 62 or 0 (in brackets or not), then 8 and 8-11 digits.
_PHONE_LIKE = re.compile(
    rf"(?<![\d+])(?:\(\s*)?(?:\+\s*)?(?:62|0)(?:\s*\))?{_SEP}8(?:{_SEP}\d){{7,11}}(?!\d)"
)


def _mask_nik_like(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return digits[:4] + "*" * 8 + digits[-4:]


def _mask_phone_like(match: re.Match[str]) -> str:
    return mask_phone(re.sub(r"[^\d+]", "", match.group(0)))


def redact_text(text: str) -> str:
    """Mask anything that looks like a NIK or an Indonesian phone number in free text, however
    its digits are grouped (`3275/0117/0885/0001`, `+62 812-3456-7890`, `(0812) 3456 7890`)."""
    text = _NIK_LIKE.sub(_mask_nik_like, text)
    return _PHONE_LIKE.sub(_mask_phone_like, text)


# What the key fingerprint is the HMAC of; a new version of the label makes a new fingerprint.
FINGERPRINT_LABEL = b"rentan-bot pii fingerprint v1"


def key_fingerprint(secret: bytes) -> str:
    """HMAC-SHA256 of a fixed label under the key: tells keys apart without revealing them."""
    return hmac.new(secret, FINGERPRINT_LABEL, hashlib.sha256).hexdigest()
