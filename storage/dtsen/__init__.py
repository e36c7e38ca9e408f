"""The DTSEN extract: its import (`import_dtsen`, in importer.py and the modules beside it) and
the table in service (`DtsenRepository`, in records.py).

Names load on first use, so the bot reads the table without loading numpy and the import's
parser processes validate without loading SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from storage.dtsen.contract import (
        FIELDS,
        NIK_INDEX,
        OPTIONAL_FIELDS,
        REQUIRED_FIELDS,
        STAGING_TABLE,
        TABLE,
        DtsenImportError,
        SkipReason,
        parse_column_map,
    )
    from storage.dtsen.importer import CHUNK_ROWS, import_dtsen
    from storage.dtsen.records import DtsenRepository
    from storage.dtsen.report import ImportSummary

_HOMES = {
    "FIELDS": "contract",
    "NIK_INDEX": "contract",
    "OPTIONAL_FIELDS": "contract",
    "REQUIRED_FIELDS": "contract",
    "STAGING_TABLE": "contract",
    "TABLE": "contract",
    "DtsenImportError": "contract",
    "SkipReason": "contract",
    "parse_column_map": "contract",
    "CHUNK_ROWS": "importer",
    "import_dtsen": "importer",
    "DtsenRepository": "records",
    "ImportSummary": "report",
}
__all__ = [
    "CHUNK_ROWS",
    "FIELDS",
    "NIK_INDEX",
    "OPTIONAL_FIELDS",
    "REQUIRED_FIELDS",
    "STAGING_TABLE",
    "TABLE",
    "DtsenImportError",
    "DtsenRepository",
    "ImportSummary",
    "SkipReason",
    "import_dtsen",
    "parse_column_map",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
