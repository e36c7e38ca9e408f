"""Synthetic DTSEN V3 extracts (no real person in them): the persons file, the family file and
the codebook, in the 2026 format (48 and 52 columns, coded values, `|`-separated).

The people are those of `bot.sample_dtsen` for the same seed (same NIKs, names, birth dates,
domicile and national desil), so the demo's listed people are found in either form. Columns
the import does not read are filled with plausible codes; their names beyond those the domain
notes list are modelled on the codebook's items.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bot.sample_dtsen import Row, _Generator
from domain.regions import Regions, load_regions

PERSONS_NAME = "anggota_keluarga_dtsen_v3_2026_sample.csv"
FAMILIES_NAME = "keluarga_dtsen_v3_2026_sample.csv"
CODEBOOK_NAME = "Kode_DTSEN_V3_2026_sample.xlsx"

PERSON_HEADER = (
    "nomor_induk_kependudukan", "nomor_kartu_keluarga", "nama", "tanggal_lahir",
    "jenis_kelamin", "status_hubungan_keluarga", "pbi_nas", "pbi_pemda", "status_kawin",
    "kepemilikan_akta_kelahiran", "status_hamil", "partisipasi_sekolah", "jenjang_pendidikan",
    "kelas_tertinggi", "ijazah_tertinggi", "status_bekerja", "jumlah_jam_kerja",
    "lapangan_usaha_dari_pekerjaan_utama", "status_dalam_pekerjaan_utama",
    "pendapatan_sebulan", "kepemilikan_usaha", "usia", "disabilitas_penglihatan",
    "disabilitas_pendengaran", "disabilitas_berjalan", "disabilitas_tangan",
    "disabilitas_belajar", "disabilitas_perilaku", "disabilitas_bicara", "disabilitas_mental",
    "penyakit_kronis", "jaminan_kesehatan", "jaminan_ketenagakerjaan", "kode_provinsi_ktp",
    "provinsi_ktp", "kode_kabupaten_kota_ktp", "kabupaten_kota_ktp", "kode_kecamatan_ktp",
    "kecamatan_ktp", "kode_kelurahan_desa_ktp", "kelurahan_desa_ktp", "rt_ktp", "rw_ktp",
    "dusun_ktp", "alamat_ktp", "pekerjaan_ktp", "pendidikan_akhir_ktp", "tanggal_update",
)  # fmt: skip
FAMILY_HEADER = (
    "nomor_kartu_keluarga", "kode_provinsi", "provinsi", "kode_kabupaten_kota",
    "kabupaten_kota", "kode_kecamatan", "kecamatan", "kode_kelurahan_desa", "kelurahan_desa",
    "alamat", "jumlah_anggota_keluarga", "nama_kepala_keluarga", "desil_nasional",
    "desil_provinsi", "desil_kabupaten_kota", "pbi_nas", "pbi_pemda", "id_pelanggan_pln",
    "status_kepemilikan_bangunan", "luas_lantai", "jenis_lantai_terluas", "jenis_dinding_terluas",
    "jenis_atap_terluas", "sumber_air_minum", "jarak_sumber_air", "sumber_penerangan",
    "daya_terpasang", "bahan_bakar_memasak", "fasilitas_bab", "jenis_kloset",
    "pembuangan_akhir_tinja", "jumlah_kamar_tidur", "aset_tabung_gas", "aset_lemari_es",
    "aset_ac", "aset_pemanas_air", "aset_telepon_rumah", "aset_televisi", "aset_emas",
    "aset_komputer", "aset_sepeda", "aset_sepeda_motor", "aset_mobil", "aset_perahu",
    "aset_lahan", "aset_rumah_lain", "jumlah_sapi", "jumlah_kambing", "jumlah_babi",
    "penerima_pkh", "penerima_bpnt", "tanggal_update",
)  # fmt: skip
# The codebook's entries for what the import decodes, and a few of the rest.
CODES: dict[str, dict[str, str]] = {
    "jenis_kelamin": {"1": "Laki-laki", "2": "Perempuan"},
    "status_bekerja": {"1": "Bekerja", "2": "Tidak bekerja"},
    "status_dalam_pekerjaan_utama": {
        "1": "Berusaha sendiri",
        "2": "Berusaha dibantu buruh tidak tetap/tidak dibayar",
        "3": "Berusaha dibantu buruh tetap/dibayar",
        "4": "Buruh/karyawan/pegawai",
        "5": "Pekerja bebas",
        "6": "Pekerja keluarga/tidak dibayar",
    },
    "lapangan_usaha_dari_pekerjaan_utama": {
        "1": "Pertanian, kehutanan dan perikanan",
        "3": "Industri pengolahan",
        "6": "Konstruksi",
        "7": "Perdagangan besar dan eceran",
        "8": "Transportasi dan pergudangan",
        "9": "Penyediaan akomodasi dan makan minum",
        "19": "Aktivitas jasa lainnya",
    },
    "status_hubungan_keluarga": {"1": "Kepala keluarga", "2": "Istri/suami", "3": "Anak"},
    "status_kawin": {"1": "Belum kawin", "2": "Kawin", "3": "Cerai hidup", "4": "Cerai mati"},
}
_INFORMAL = ("1", "2", "5", "6")
_SECTORS = tuple(CODES["lapangan_usaha_dari_pekerjaan_utama"])
FLOAT_SHARE = 0.2  # NIK and KK written as spreadsheet floats (`3275...0001.0`)
BadKind = Literal["scientific_notation", "bad_nik", "no_family", "duplicate_nik", "bad_date"]
BAD_KINDS: tuple[BadKind, ...] = (
    "scientific_notation", "bad_nik", "no_family", "duplicate_nik", "bad_date",
)  # fmt: skip
Domicile = Literal["whole", "parts", "names"]


@dataclass(frozen=True)
class V3Sample:
    """Where the three files went, and how many person rows the import must skip."""

    persons: Path
    families: Path
    codebook: Path
    bad_persons: int
    bad_families: int


def _float(number: str, rng: random.Random) -> str:
    return number + ".0" if rng.random() < FLOAT_SHARE else number


def _families(seed: int, region_code: str) -> Iterator[list[Row]]:
    """The people of `sample_dtsen` for this seed, a family (same KK) at a time."""
    rows = _Generator(seed, region_code, 0.05).families_rows()
    first = next(rows)
    family = [first]
    for row in rows:
        if row[6] != family[0][6]:
            yield family
            family = []
        family.append(row)


def write_v3_sample(
    directory: Path,
    *,
    rows: int,
    seed: int,
    bad_rows: int = 0,
    region_code: str = "3275",
    delimiter: str = "|",
    domicile: Domicile = "whole",
) -> V3Sample:
    """Write the persons file (`rows` rows, `bad_rows` of them for the import to skip), the
    family file and the codebook into `directory`."""
    if not 0 <= bad_rows <= rows:
        raise ValueError("bad_rows must be between 0 and rows")
    directory.mkdir(parents=True, exist_ok=True)
    regions = load_regions()
    rng = random.Random(f"v3-{seed}")
    bad_rng = random.Random(f"v3-bad-{seed}")
    bad_at = set(bad_rng.sample(range(min(20, rows), rows), bad_rows)) if bad_rows else set()
    sample = V3Sample(
        persons=directory / PERSONS_NAME,
        families=directory / FAMILIES_NAME,
        codebook=directory / CODEBOOK_NAME,
        bad_persons=bad_rows,
        bad_families=2 if bad_rows else 0,
    )
    with (
        sample.persons.open("w", encoding="utf-8", newline="") as persons_file,
        sample.families.open("w", encoding="utf-8", newline="") as families_file,
    ):
        persons = csv.writer(persons_file, delimiter=delimiter, lineterminator="\n")
        families = csv.writer(families_file, delimiter=delimiter, lineterminator="\n")
        persons.writerow(PERSON_HEADER)
        families.writerow(FAMILY_HEADER)
        written = bad_count = 0
        last_family: list[str] | None = None
        last_person: list[str] | None = None
        seen_kks: set[str] = set()
        for family in _families(seed, region_code):
            if written >= rows:
                break
            family = family[: rows - written]
            head = family[0]
            village, desil, no_kk, alamat = head[4], int(head[5]), head[6], head[7]
            # The one-file generator's KK serials wrap after 9.999 families: keep KKs unique here,
            # so the only duplicate KK of a sample is the one asked for.
            while no_kk in seen_kks:
                no_kk = f"{no_kk[:12]}{(int(no_kk[12:]) + 1) % 10_000:04d}"
            seen_kks.add(no_kk)
            kk = _float(no_kk, rng)
            fam_row = _family_row(regions, village, desil, kk, alamat, len(family), head[1],
                                  domicile, rng)  # fmt: skip
            families.writerow(fam_row)
            if bad_rows and last_family is None:
                # One family listed twice and one with nobody in the persons file.
                families.writerow(fam_row)
                families.writerow(_family_row(regions, village, desil, "3275990101010001",
                                              alamat, 1, "NOBODY", domicile, rng))  # fmt: skip
                last_family = fam_row
            for position, person in enumerate(family):
                row = _person_row(person, position, kk, village, rng)
                if written in bad_at:
                    kind = BAD_KINDS[bad_count % len(BAD_KINDS)]
                    bad_count += 1
                    row = _bad(kind, row, last_person, bad_rng)
                else:
                    last_person = row
                persons.writerow(row)
                written += 1
    _write_codebook(sample.codebook)
    return sample


def _family_row(regions: Regions, village: str, desil: int, kk: str, alamat: str, size: int,
                head_name: str, domicile: Domicile, rng: random.Random) -> list[str]:  # fmt: skip
    # Three rankings of one family: a city richer than its province and the nation puts the
    # same family lower (poorer) among its own residents.
    provinsi = max(1, min(10, desil - int(rng.random() * 2)))
    kabupaten = max(1, min(10, provinsi - int(rng.random() * 3)))
    codes = {
        "whole": (village[:2], village[:4], village[:6], village),
        "parts": (village[:2], village[2:4], village[4:6], village[6:]),
        "names": ("", "", "", ""),
    }[domicile]
    values = {
        "nomor_kartu_keluarga": kk,
        "kode_provinsi": codes[0],
        "provinsi": "JAWA BARAT",
        "kode_kabupaten_kota": codes[1],
        "kabupaten_kota": (regions.name(village[:4]) or "").upper(),
        "kode_kecamatan": codes[2],
        "kecamatan": (regions.name(village[:6]) or "").upper(),
        "kode_kelurahan_desa": codes[3],
        "kelurahan_desa": (regions.name(village) or "").upper(),
        "alamat": alamat,
        "jumlah_anggota_keluarga": str(size),
        "nama_kepala_keluarga": head_name,
        "desil_nasional": str(desil),
        "desil_provinsi": str(provinsi),
        "desil_kabupaten_kota": str(kabupaten),
        "pbi_nas": "1" if desil <= 4 else "0",
        "pbi_pemda": "0",
        "id_pelanggan_pln": f"5{int(rng.random() * 1e11):011d}",
        "tanggal_update": "2026-01-15",
    }
    return [values[n] if n in values else str(int(rng.random() * 4) + 1) for n in FAMILY_HEADER]


def _person_row(person: Row, position: int, kk: str, village: str,
                rng: random.Random) -> list[str]:  # fmt: skip
    nik, nama, born, gender, *_ = person
    day, month, year = born.split("-")
    working = rng.random() < 0.7
    informal = rng.random() < 0.75
    # The KTP usually names the city lived in; some who moved keep their old regency's KTP.
    ktp = nik[:4] if nik[:4] != village[:4] and rng.random() < 0.5 else village[:4]
    values = {
        "nomor_induk_kependudukan": _float(nik, rng),
        "nomor_kartu_keluarga": kk,
        "nama": nama,
        "tanggal_lahir": f"{year}-{month}-{day}",
        "jenis_kelamin": "1" if gender == "L" else "2",
        "status_hubungan_keluarga": str(min(position + 1, 3)),
        "status_kawin": "2" if position < 2 else "1",
        "status_bekerja": "1" if working else "2",
        "jumlah_jam_kerja": str(int(rng.random() * 60)) if working else "",
        "lapangan_usaha_dari_pekerjaan_utama": (
            _SECTORS[int(rng.random() * len(_SECTORS))] if working else ""
        ),
        "status_dalam_pekerjaan_utama": (
            (_INFORMAL[int(rng.random() * 4)] if informal else "4") if working else ""
        ),
        "usia": str(2026 - int(year)),
        "kode_provinsi_ktp": ktp[:2],
        "provinsi_ktp": "JAWA BARAT" if ktp[:2] == "32" else "",
        "kode_kabupaten_kota_ktp": ktp,
        "kode_kecamatan_ktp": ktp + "01",
        "kode_kelurahan_desa_ktp": ktp + "011001",
        "rt_ktp": "001",
        "rw_ktp": "002",
        "tanggal_update": "2026-01-15",
    }
    return [values.get(name, str(int(rng.random() * 2) + 1)) for name in PERSON_HEADER]


def _bad(kind: BadKind, row: list[str], earlier: list[str] | None,
         rng: random.Random) -> list[str]:  # fmt: skip
    """A person row the import must skip, derived from a valid one."""
    bad = list(row)
    nik = row[0].removesuffix(".0")
    if kind == "scientific_notation":
        bad[0] = f"{int(nik) / 1e15:.5f}E+15"
    elif kind == "bad_nik":
        bad[0] = nik[:12] + "0000"
    elif kind == "no_family":
        bad[1] = "3275990101019999"
    elif kind == "duplicate_nik" and earlier is not None:
        bad = list(earlier)
    else:
        bad[3] = rng.choice(("1990-02-30", "1985-04-31", "1970-13-01"))
    return bad


def _write_codebook(path: Path) -> None:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Kode")
    sheet.append(["kolom", "kode", "keterangan"])
    for kolom, codes in CODES.items():
        for kode, keterangan in codes.items():
            sheet.append([kolom, int(kode), keterangan])  # codes as numbers, as Excel keeps them
    workbook.save(path)
