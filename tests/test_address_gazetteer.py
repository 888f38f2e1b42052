"""The address gazetteer: CSV and GeoJSON through the real file ingest (bad rows quarantined with their
reason and raw text), and the search that tolerates case, spacing, punctuation and abbreviations."""
from __future__ import annotations

import json

import pytest

from geo.addresses import AddressIndex, address_key
from ingest.context import ContextProvider
from ingest.files import FileIngestor
from settings import load_settings
from store import Store
from tests.conftest import write_config

SQUARE = {"type": "Polygon", "coordinates": [[[101.6, 2.9], [101.8, 2.9], [101.8, 3.0], [101.6, 3.0], [101.6, 2.9]]]}


@pytest.fixture
def city(tmp_path):
    settings = load_settings(write_config(tmp_path))
    store = Store(tmp_path / "pheoc.duckdb")
    files = FileIngestor(store, ContextProvider(store, settings))
    boundary = tmp_path / "boundary.geojson"
    boundary.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"area_id": "city", "name": "City"}, "geometry": SQUARE}]}))
    assert files.ingest_file(boundary, area_kind="boundary").error is None
    yield tmp_path, store, files
    store.close()


def quarantined(store: Store) -> dict[str, str]:
    """raw payload -> reason code of every quarantined address."""
    return {bytes(raw).decode(): code for code, raw in store.read_rows(
        "SELECT reason_code, raw_payload FROM quarantine WHERE kind = 'address'")}


def test_a_csv_gazetteer_is_validated_row_by_row(city):
    folder, store, files = city
    path = folder / "addresses.csv"
    path.write_text("\n".join([
        "address_id,text,lat,lng",
        "A1,\"12, Jalan Melati 3, Taman Melati\",2.95,101.65",
        "A2,14 Jalan Melati 3,2.9501,101.6502",
        "A3,,2.95,101.65",                # no text
        "A4,16 Jalan Melati 3,north,101.65",  # not a number
        "A5,1 Jalan Jauh,3.5,101.65",      # outside the city
        "A6,2 Jalan Jauh,95,101.65",       # not a latitude
        "A7,--,2.95,101.65",               # no letters or digits
        "A8,18 Jalan Melati 3,2.95",       # a cell short
        "A1,99 Jalan Lain,2.96,101.66",    # the same id, another address
    ]) + "\n")
    result = files.ingest_file(path)
    assert result.kind == "address" and result.result.accepted == 2
    stored = store.read("SELECT address_id, text, search_key FROM addresses ORDER BY address_id")
    assert list(stored["address_id"]) == ["A1", "A2"]
    assert list(stored["search_key"]) == ["12jalanmelati3tamanmelati", "14jalanmelati3"]
    reasons = quarantined(store)
    assert reasons == {
        "A3,,2.95,101.65": "missing_field", "A4,16 Jalan Melati 3,north,101.65": "wrong_type",
        "A5,1 Jalan Jauh,3.5,101.65": "outside_city", "A6,2 Jalan Jauh,95,101.65": "coordinate_out_of_range",
        "A7,--,2.95,101.65": "invalid_value", "A8,18 Jalan Melati 3,2.95": "malformed_csv",
        "A1,99 Jalan Lain,2.96,101.66": "conflicting_duplicate"}


def test_a_geojson_gazetteer_takes_points(city):
    folder, store, files = city

    def feature(props, geometry):
        return {"type": "Feature", "properties": props, "geometry": geometry}
    point = {"type": "Point", "coordinates": [101.7, 2.95]}
    path = folder / "addresses-north.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        feature({"address_id": "G1", "text": "1 Persiaran Utara"}, point),
        feature({"address_id": "G2", "text": "2 Persiaran Utara"}, SQUARE),       # not a point
        feature({"address_id": "G3", "text": "3 Persiaran Utara"}, None),         # no place at all
        feature({"address_id": "G4", "text": "4 Persiaran Utara", "lat": 2.95, "lng": 101.7}, point),  # both
        feature({"address_id": "G5", "text": "5 Persiaran Utara", "colour": "red"}, point),
    ]}))
    result = files.ingest_file(path)
    assert result.kind == "address" and result.result.accepted == 1 and result.result.rejected == 4
    row = store.read("SELECT * FROM addresses").iloc[0]
    assert (row["address_id"], row["lat"], row["lng"]) == ("G1", 2.95, 101.7)
    codes = sorted(quarantined(store).values())
    assert codes == ["invalid_geometry", "invalid_value", "missing_field", "unknown_field"]
    kept = [json.loads(raw) for raw in quarantined(store)]
    assert {f["properties"]["address_id"] for f in kept} == {"G2", "G3", "G4", "G5"}  # each with its raw feature


TEXTS = ["12 Jalan Melati 3, Taman Melati", "12A Jalan Melati 3, Taman Melati", "120 Jalan Melati 3, Taman Melati",
         "5 Lorong Seroja 4, Taman Seroja", "Blok B, Pangsapuri Cempaka 2, Jalan Cempaka 2, Seri Cempaka",
         "7 Persiaran Bestari, Bukit Permai", "3 Rue Thérèse, Quartier Élysée"]


@pytest.fixture(scope="module")
def index():
    return AddressIndex([f"A{i}" for i in range(len(TEXTS))], TEXTS, [2.95] * len(TEXTS), [101.7] * len(TEXTS))


@pytest.mark.parametrize("typed", ["12 jalan melati 3, taman melati", "12 JALAN   MELATI 3 TAMAN MELATI",
                                   "12,Jln.Melati-3 Tmn Melati", "  12 jalan melati3 taman   melati  "])
def test_an_address_is_found_however_it_is_typed(index, typed):
    assert [m.address_id for m in index.exact(typed)] == ["A0"]


def test_matches_are_offered_as_you_type(index):
    assert index.search("12 jal", 1)[0].text == TEXTS[0]  # the address that starts so, first
    assert {m.address_id for m in index.search("12 jal", 3)} == {"A0", "A1", "A2"}  # then "12A", "120" (word by word)
    assert [m.address_id for m in index.search("12", 10)][:3] == ["A0", "A2", "A1"]  # shortest key first
    assert [m.address_id for m in index.search("lrg seroja", 5)] == ["A3"]  # an abbreviation, inside the text
    assert [m.address_id for m in index.search("melati 120", 5)] == ["A2"]  # words in any order
    assert [m.address_id for m in index.search("therese", 5)] == ["A6"]  # accents do not matter
    assert index.search("", 5) == [] and index.search("zz", 5) == []
    assert address_key("Jalan 1 2") != address_key("Jalan 12")


def test_the_demo_gazetteer_is_searchable_fast(demo_city):
    """Tens of thousands of addresses, each found by its own text however typed (bench/address_check.py times it)."""
    from services.address_search import address_index, suggest_addresses

    dsettings, _ = demo_city
    with Store(dsettings.path(dsettings.store.path)) as store:
        count = store.scalar("SELECT count(*) FROM addresses")
        assert count >= 20_000
        index = address_index(store)
        sample = store.read("SELECT text FROM addresses USING SAMPLE 50 ROWS (reservoir, 7)")["text"].tolist()
        for text in sample:
            typed = text.upper().replace(",", " ")[: max(6, len(text) // 2)]
            assert index.search(typed, 20), typed
            assert [m.text for m in index.exact(text.lower())] == [text]
        assert suggest_addresses(store, sample[0][:8], 5)
        # Every case of the demo is reported at one of its addresses.
        unplaced = store.scalar("SELECT count(*) FROM cases c WHERE lat IS NOT NULL AND NOT EXISTS "
                                "(SELECT 1 FROM addresses a WHERE a.lat = c.lat AND a.lng = c.lng)")
        assert unplaced == 0
