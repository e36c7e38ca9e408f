"""Rows of the BPJS Ketenagakerjaan list: approved (or enrolled) applications, in batches."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from domain.annex import AnnexRow
from domain.budget import WIB, local_today
from domain.exports import ExportRow
from domain.lifecycle import PLACE_HOLDING, Status
from domain.pii import digest_key
from storage.engine import Database
from storage.models import Application, DtsenRecord

__all__ = ["BATCH_ROWS", "ExportRepository"]

# Rows per query: large enough that per-query costs vanish, small enough to stay a few MB.
BATCH_ROWS = 2_000

_COLUMNS = (
    col(Application.id),
    col(Application.nik),
    col(Application.nama),
    col(Application.tanggal_lahir),
    col(Application.jenis_kelamin),
    col(Application.alamat),
    col(Application.kecamatan_code),
    col(Application.kelurahan_code),
    col(Application.phone),
    col(Application.occupation),
    col(Application.occupation_other),
    col(Application.heir_name),
    col(Application.heir_relation),
    col(Application.code),
    col(Application.kpj_number),
    col(Application.nik_hash),
)


async def _dtsen_names(session: AsyncSession, nik_hashes: Sequence[str | None]) -> dict[str, str]:
    """The DTSEN name of each NIK (by its blind index, hex as applications keep it) that the
    extract in service holds: one query per batch, by the short integer key, then the digest."""
    digests = {}
    for value in nik_hashes:
        with contextlib.suppress(ValueError, TypeError):
            digests[bytes.fromhex(value or "")] = value or ""
    digests.pop(b"", None)
    if not digests:
        return {}
    table = DtsenRecord.__table__  # type: ignore[attr-defined]
    query = sa.select(table.c.nik_hash, table.c.nama).where(
        table.c.nik_key.in_({digest_key(digest) for digest in digests})
    )
    rows = (await session.execute(query)).all()
    return {digests[row.nik_hash]: row.nama for row in rows if row.nik_hash in digests}


class ExportRepository:
    """Reads the list handed to BPJS; full NIKs and phones, so admins only, never logged."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def approved_rows(
        self, *, statuses: Sequence[Status] = (Status.APPROVED,), batch_rows: int = BATCH_ROWS
    ) -> AsyncIterator[ExportRow]:
        """Every application in `statuses`, oldest first, read in batches of `batch_rows`.

        One read transaction for the whole list, so the file is the list as it stood at one
        moment even while reviewers keep approving (`Database.snapshot`: a BEGIN on SQLite,
        whose reads otherwise run in autocommit; REPEATABLE READ on PostgreSQL). Selecting
        columns rather than models skips the ORM's per-row cost. Read it to the end (or wrap it
        in `contextlib.aclosing`) so the transaction ends promptly.
        """
        last_id = 0
        async with self._db.snapshot() as session, session.begin():
            while True:
                query = (
                    sa.select(*_COLUMNS)
                    .where(col(Application.status).in_(statuses), col(Application.id) > last_id)
                    .order_by(col(Application.id))
                    .limit(batch_rows)
                )
                batch = (await session.execute(query)).all()
                names = await _dtsen_names(session, [row.nik_hash for row in batch])
                for row in batch:
                    yield ExportRow(
                        nik=row.nik or "",
                        nama=row.nama or "",
                        tanggal_lahir=row.tanggal_lahir,
                        jenis_kelamin=row.jenis_kelamin or "",
                        alamat=row.alamat or "",
                        kecamatan_code=row.kecamatan_code or "",
                        kelurahan_code=row.kelurahan_code or "",
                        phone=row.phone or "",
                        occupation=row.occupation or "",
                        occupation_other=row.occupation_other or "",
                        heir_name=row.heir_name or "",
                        heir_relation=row.heir_relation or "",
                        code=row.code or "",
                        kpj=row.kpj_number or "",
                        nama_dtsen=names.get(row.nik_hash or "", ""),
                    )
                if len(batch) < batch_rows:
                    return
                last_id = batch[-1].id

    async def collect(self, *, statuses: Sequence[Status] = (Status.APPROVED,)) -> list[ExportRow]:
        """The whole list in memory (10,000 rows are a few MB), for the synchronous writers."""
        return [row async for row in self.approved_rows(statuses=statuses)]

    async def annex_rows(self) -> list[AnnexRow]:
        """Every participant the city pays for (approved and enrolled), for the decree's annex,
        read in one snapshot like the list."""
        rows: list[AnnexRow] = []
        async with self._db.snapshot() as session, session.begin():
            result = await session.execute(
                sa.select(
                    col(Application.nik),
                    col(Application.nama),
                    col(Application.alamat),
                    col(Application.kecamatan_code),
                    col(Application.kelurahan_code),
                    col(Application.kpj_number),
                    col(Application.decided_at),
                    col(Application.coverage_start),
                    col(Application.lapsed_at),
                )
                .where(col(Application.status).in_(PLACE_HOLDING))
                .order_by(col(Application.id))
            )
            for row in result:
                rows.append(
                    AnnexRow(
                        nik=row.nik or "",
                        nama=row.nama or "",
                        alamat=row.alamat or "",
                        kecamatan_code=row.kecamatan_code or "",
                        kelurahan_code=row.kelurahan_code or "",
                        kpj_number=row.kpj_number or "",
                        approved_on=local_today(row.decided_at, WIB) if row.decided_at else None,
                        coverage_start=row.coverage_start,
                        lapsed_on=local_today(row.lapsed_at, WIB) if row.lapsed_at else None,
                    )
                )
        return rows
