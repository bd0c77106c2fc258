"""Reading a people CSV, table-driven: header spellings, amounts, statuses, and each kind of bad row by its line."""
import io

import pytest

from connectors import BadFile, BadRow, ContactCsv, ContactRow
from connectors.contact_csv import parse_amount, read_header


def rows(text: str) -> list[ContactRow | BadRow]:
    return list(ContactCsv(io.StringIO(text, newline="")))


def from_bytes(data: bytes) -> list[ContactRow | BadRow]:
    # What `open_csv` does to a file: the same decoding, from memory.
    return list(ContactCsv(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", errors="surrogateescape",
                                            newline="")))


@pytest.mark.parametrize(("header", "fields"), [
    pytest.param("email,name,plan,status,monthly amount,tags,notes",
                 ["email", "name", "plan", "status", "monthly_cents", "tags", "notes"], id="opsos's own names"),
    pytest.param("E-mail,Full name,Tier,Subscription Status,MRR,Labels,Comments",
                 ["email", "name", "plan", "status", "monthly_cents", "tags", "notes"], id="other spellings"),
    pytest.param("Email Address,First Name,Last Name", ["email", "first_name", "last_name"], id="split names"),
    pytest.param(" EMAIL ,Company", ["email"], id="spaces and capitals; an unknown column is an attribute"),
])
def test_header_spellings_map_onto_fields(header, fields):
    parsed = read_header(header.split(","))
    assert [parsed.fields[i] for i in sorted(parsed.fields)] == fields


@pytest.mark.parametrize(("header", "says"), [
    pytest.param("name,plan", "no email column", id="no email column"),
    pytest.param("email,E-mail", "two columns for email", id="two email columns"),
])
def test_a_header_opsos_cannot_key_contacts_by_is_refused(header, says):
    with pytest.raises(BadFile, match=says):
        read_header(header.split(","))


@pytest.mark.parametrize(("text", "cents"), [
    ("49", 4900), ("49.5", 4950), ("$1,200.50", 120050), ("49,90", 4990), ("€12", 1200), ("12 USD", 1200),
    ("0", 0),
])
def test_amounts_as_spreadsheets_show_them(text, cents):
    assert parse_amount(text) == cents


@pytest.mark.parametrize("text", ["twelve", "-5", "1.234", "12.345", "99999999999", "$"])
def test_what_is_not_an_amount_is_refused(text):
    with pytest.raises(ValueError, match="monthly amount"):
        parse_amount(text)


def test_each_bad_row_is_reported_by_its_line_and_the_rest_are_read():
    """Proves one bad row skips only itself: no email, a bad address, a bad amount, a wrong column count and
    an unknown status are each told by the line they are on; the good rows around them come through."""
    found = rows(
        "email,name,monthly amount,status\n"       # 1
        "ana@example.com,Ana Souza,12,active\n"     # 2
        ",No Email,12,active\n"                     # 3
        "not-an-address,Bad Address,12,active\n"    # 4
        "ben@example.com,Ben,twelve,active\n"       # 5
        "cleo@example.com,Cleo\n"                   # 6
        "dev@example.com,Dev,12,vip\n"              # 7
        "\n"                                        # 8: blank lines are nothing
        "eve@example.com,Eve,$10,cancelled\n"       # 9
    )
    bad = {r.line: r.reason for r in found if isinstance(r, BadRow)}
    assert sorted(bad) == [3, 4, 5, 6, 7]
    assert bad[3] == "no email address"
    assert "not an email address" in bad[4]
    assert "monthly amount “twelve”" in bad[5]
    assert bad[6] == "2 columns where the header has 4"
    assert "status “vip”" in bad[7]
    good = [r for r in found if isinstance(r, ContactRow)]
    assert [(r.line, r.email, r.monthly_cents, r.status) for r in good] == [
        (2, "ana@example.com", 1200, "active"), (9, "eve@example.com", 1000, "lapsed")]


def test_non_utf8_bytes_and_a_nul_fail_only_their_rows():
    found = from_bytes(b"email,name\nana@example.com,Ana\nzoe@example.com,Zo\xe9\nnul@example.com,N\x00ul\n"
                       b"ben@example.com,Ben\n")
    bad = {r.line: r.reason for r in found if isinstance(r, BadRow)}
    assert bad == {3: "not UTF-8 (byte 0xe9 in column “name”); save the file as UTF-8",
                   4: "a NUL character in column “name”"}
    assert [r.email for r in found if isinstance(r, ContactRow)] == ["ana@example.com", "ben@example.com"]


def test_a_byte_order_mark_semicolons_and_quoted_line_breaks_are_read():
    """Excel's UTF-8 export starts with a BOM and, in many countries, separates with semicolons."""
    found = from_bytes('\ufeffE-mail;Name;Notes\nana@example.com;Ana;"two\nlines"\nben@example.com;Ben;\n'
                       .encode())
    assert [(r.line, r.email, r.notes) for r in found] == [(2, "ana@example.com", "two\nlines"),
                                                          (4, "ben@example.com", None)]


def test_unknown_columns_are_attributes_and_tags_are_split():
    [row] = rows("email,Company,Country,tags,first name,last name\nana@example.com,Souza Studio,,vip; early|vip,"
                 "Ana,Souza\n")
    assert row.attributes == {"Company": "Souza Studio"}
    assert row.tags == ["vip", "early"]
    assert row.name == "Ana Souza"


def test_the_same_address_twice_keeps_the_first_line():
    found = rows("email,name\nana@example.com,Ana\nANA@example.com,Ana again\n")
    assert isinstance(found[0], ContactRow)
    assert found[1] == BadRow(line=3, reason="ANA@example.com is already on line 2; this line skipped")


def test_an_empty_file_is_refused_and_a_header_alone_has_no_rows():
    with pytest.raises(BadFile, match="the file is empty"):
        rows("")
    assert rows("email,name\n") == []
