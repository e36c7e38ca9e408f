"""Region codes: the packaged Kemendagri list, checked against the Kota Bekasi reference."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from domain.regions import Level, Region, Regions, load_regions, normalize_code

# Maintained by hand from the Kemendagri decree; always present in the repository's CI checkout.
REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"


@pytest.fixture(scope="module")
def regions() -> Regions:
    return load_regions()


@pytest.fixture(scope="module")
def bekasi_reference() -> list[dict[str, str]]:
    with (REFERENCE / "wilayah_kota_bekasi.csv").open(encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


def test_all_levels_are_loaded(regions: Regions) -> None:
    """38 provinces, 514 regencies and cities, 7,285 kecamatan, 83,762 desa and kelurahan."""
    assert len(regions) == 91_599
    assert len(regions.province_codes) == 38


def test_kota_bekasi_has_12_kecamatan_matching_the_reference(
    regions: Regions, bekasi_reference: list[dict[str, str]]
) -> None:
    """Codes and names of the 12 kecamatan of 32.75 agree with the reference file."""
    expected = sorted(
        {(normalize_code(row["kode_kecamatan"]), row["kecamatan"]) for row in bekasi_reference}
    )
    assert len(expected) == 12
    assert expected == [(r.code, r.name) for r in regions.kecamatan_of("3275")]


def test_kota_bekasi_has_56_kelurahan_matching_the_reference(
    regions: Regions, bekasi_reference: list[dict[str, str]]
) -> None:
    """Every kelurahan of the reference file is found, in its kecamatan, under the same name."""
    found = [
        (village.code, village.name)
        for district in regions.kecamatan_of("3275")
        for village in regions.kelurahan_of(district.code)
    ]
    expected = [(normalize_code(row["kode"]), row["kelurahan"]) for row in bekasi_reference]
    assert len(expected) == 56
    assert sorted(expected) == found


def test_lookups_return_frozen_regions_at_each_level(regions: Regions) -> None:
    """province/regency/district/village each answer for their own code length."""
    assert Region("32", "Jawa Barat", Level.PROVINCE) == regions.province("32")
    assert Region("3275", "Kota Bekasi", Level.REGENCY) == regions.regency("3275")
    assert Region("327501", "Bekasi Timur", Level.DISTRICT) == regions.district("327501")
    assert Region("3275011001", "Bekasijaya", Level.VILLAGE) == regions.village("3275011001")


def test_region_is_immutable(regions: Regions) -> None:
    """Regions are shared across the process, so nobody may change one."""
    region = regions.regency("3275")
    assert region is not None
    with pytest.raises(AttributeError):
        region.name = "Bekasi"  # type: ignore[misc]


def test_kabupaten_bekasi_is_a_different_regency(regions: Regions) -> None:
    """32.16 (Kabupaten Bekasi) is not 32.75 (Kota Bekasi)."""
    assert regions.name("3216") == "Kabupaten Bekasi"
    assert len(regions.kecamatan_of("3216")) == 23


def test_dotted_codes_are_accepted(regions: Regions) -> None:
    """Codes copied with Kemendagri's dots work the same."""
    assert regions.district("32.75.01") == regions.district("327501")
    assert regions.village("32.75.01.1001") == regions.village("3275011001")
    assert regions.kecamatan_of("32.75") == regions.kecamatan_of("3275")
    assert normalize_code(" 32.75.01 ") == "327501"


def test_a_code_at_the_wrong_level_is_not_found(regions: Regions) -> None:
    """regency() does not answer for a kecamatan code, nor province() for a regency."""
    assert regions.regency("327501") is None
    assert regions.province("3275") is None
    assert regions.kecamatan_of("32") == []
    assert regions.kelurahan_of("3275") == []


@pytest.mark.parametrize("code", ["", "99", "3299", "327599", "3275019999", "abc", "32.75.x"])
def test_unknown_codes_are_not_found(regions: Regions, code: str) -> None:
    """Lookups of codes that do not exist answer None or nothing."""
    assert regions.name(code) is None
    assert regions.get(code) is None
    assert not regions.is_province_code(code)


def test_name_answers_for_any_level(regions: Regions) -> None:
    """name() picks the level from the code length."""
    assert regions.name("32") == "Jawa Barat"
    assert regions.name("32.75.12") == "Pondokmelati"


def test_trailing_spaces_in_source_names_are_stripped(regions: Regions) -> None:
    """Five source names end with a space; none does once loaded."""
    assert regions.name("3172") == "Kota Administrasi Jakarta Utara"
    assert regions.name("5202102004") == "Jurang Jaler"


def test_names_with_commas_are_read_whole(regions: Regions) -> None:
    """The two quoted CSV names keep their commas."""
    assert regions.name("1207281007") == "Lubuk Pakam I,II"
    assert regions.name("1402092010") == "Lambang Sari I, II, III"


def test_every_province_code_is_a_province(regions: Regions) -> None:
    """is_province_code agrees with the province list, and Papua's new provinces are there."""
    assert all(regions.is_province_code(code) for code in regions.province_codes)
    assert {"91", "92", "93", "94", "95", "96"} <= regions.province_codes


def test_children_come_sorted_by_code(regions: Regions) -> None:
    """kecamatan_of and kelurahan_of list in code order."""
    codes = [region.code for region in regions.kecamatan_of("3201")]
    assert codes == sorted(codes)
    assert all(region.parent_code == "3201" for region in regions.kecamatan_of("3201"))


def test_regencies_of_a_province_are_listed(regions: Regions) -> None:
    """Jawa Barat has 27 regencies and cities."""
    assert len(regions.regencies_of("32")) == 27


def test_dki_jakarta_has_kepulauan_seribu_and_five_administrative_cities(
    regions: Regions,
) -> None:
    """31.01 is the one kabupaten administrasi, 31.71-31.75 the five kota administrasi."""
    assert [(r.code, r.name) for r in regions.regencies_of("31")] == [
        ("3101", "Kabupaten Administrasi Kepulauan Seribu"),
        ("3171", "Kota Administrasi Jakarta Pusat"),
        ("3172", "Kota Administrasi Jakarta Utara"),
        ("3173", "Kota Administrasi Jakarta Barat"),
        ("3174", "Kota Administrasi Jakarta Selatan"),
        ("3175", "Kota Administrasi Jakarta Timur"),
    ]
    assert all(
        r.level is Level.REGENCY and r.parent_code == "31" for r in regions.regencies_of("31")
    )


def test_all_38_provinces_are_present_under_their_codes(regions: Regions) -> None:
    """Every province of Kepmendagri 300.2.2-2138/2025, Papua's four new ones included."""
    expected = {
        "11": "Aceh",
        "12": "Sumatera Utara",
        "13": "Sumatera Barat",
        "14": "Riau",
        "15": "Jambi",
        "16": "Sumatera Selatan",
        "17": "Bengkulu",
        "18": "Lampung",
        "19": "Kepulauan Bangka Belitung",
        "21": "Kepulauan Riau",
        "31": "Daerah Khusus Ibukota Jakarta",
        "32": "Jawa Barat",
        "33": "Jawa Tengah",
        "34": "Daerah Istimewa Yogyakarta",
        "35": "Jawa Timur",
        "36": "Banten",
        "51": "Bali",
        "52": "Nusa Tenggara Barat",
        "53": "Nusa Tenggara Timur",
        "61": "Kalimantan Barat",
        "62": "Kalimantan Tengah",
        "63": "Kalimantan Selatan",
        "64": "Kalimantan Timur",
        "65": "Kalimantan Utara",
        "71": "Sulawesi Utara",
        "72": "Sulawesi Tengah",
        "73": "Sulawesi Selatan",
        "74": "Sulawesi Tenggara",
        "75": "Gorontalo",
        "76": "Sulawesi Barat",
        "81": "Maluku",
        "82": "Maluku Utara",
        "91": "Papua",
        "92": "Papua Barat",
        "93": "Papua Selatan",
        "94": "Papua Tengah",
        "95": "Papua Pegunungan",
        "96": "Papua Barat Daya",
    }
    assert len(expected) == 38
    assert set(expected) == regions.province_codes
    assert expected == {code: regions.name(code) for code in sorted(regions.province_codes)}


def test_every_packaged_region_has_its_parent(regions: Regions) -> None:
    """No orphan codes: every kelurahan's kecamatan, regency and province exist."""
    for district in regions.kecamatan_of("3275"):
        assert district.parent_code is not None
        assert regions.regency(district.parent_code) is not None
    assert Region("32", "Jawa Barat", Level.PROVINCE).parent_code is None


def test_loading_reads_every_region_of_the_package() -> None:
    """All 91,599 rows come back from the packaged data (its load time is a bench figure)."""
    load_regions.cache_clear()
    assert len(load_regions()) == 91_599


def test_load_regions_is_cached() -> None:
    """The data is read once per process."""
    assert load_regions() is load_regions()
