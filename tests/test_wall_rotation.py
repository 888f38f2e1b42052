from pages._shell import next_wall_page


def test_rotation_cycles_and_starts_from_unknown_pages():
    rotation = ("/", "/clusters", "/early-warning")
    assert next_wall_page(rotation, "/") == "/clusters"
    assert next_wall_page(rotation, "/early-warning") == "/"
    assert next_wall_page(rotation, "/rejected") == "/"
    assert next_wall_page(("/",), "/") is None
