"""Vectorised validation of bulk readings CSV files (issue 16): column expressions instead of a Python call per row.

A block of a readings CSV (some MB of whole lines) is split into lines with Arrow compute kernels
and into fields by Arrow's CSV reader (when every line is a plain row of the header's width; else
line by line with ``split_pattern``), and every line's first failing check is found with column
expressions (times all of one width: by byte arithmetic over a fixed-width matrix), in the
order ``ingest.records.validate_record`` checks a reading: ragged row, unknown field, then per field
in FIELD_SPECS order (missing, type, range; the timestamp's offset and its year-1 overflow), then
``ingest.earliest_date`` (a 1900-01-01 placeholder), the future, the sensor registry. The accepted
rows leave as one Arrow table, typed as the record validator types them; the file ingestor has
the store's one hash expression evaluated over it (store.row_hash.with_reading_hashes) and the store
inserts it in one statement (store/bulk_write.py).

Exactness is kept by a rule rather than by re-implementing every corner of Python's parsers: the
column expressions only decide rows written the ordinary way (printable ASCII, decimal integers,
plain decimal numbers, ``YYYY-MM-DD[T ]HH:MM:SS[.f]`` with ``Z`` or ``±HH:MM``). Any other row
(``1e3`` as a seq, ``1_000`` as a value, a non-ASCII sensor name, a compact ISO time, a line over
the record cap) is handed to the record validator itself, one row at a time. A rejected row also
gets its ``reason_detail`` from the record validator (rejects are few), which confirms the code:
``BlockVerdict.disagreements`` counts the rows where they differ (the test holds it at zero; the
record validator's answer is the one kept).

Which files come here is decided by the file ingestor (ingest.files): readings CSVs without quote
characters or NUL bytes, whose carriage returns all end lines, and whose lines are short enough
that every block holds a line end. Any other CSV takes the per-record path, which reads quoted
fields that span lines.
"""
from __future__ import annotations

import csv
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from ingest.batch import describe_exception
from ingest.records import FIELD_SPECS, INT64_MAX, Reject, ValidationContext, validate_record

log = logging.getLogger(__name__)
KIND = "reading"
# A block of whole lines validated and stored together: large enough that the per-statement costs
# (registering the table, the insert into the primary key and its commit) are small per row, small
# enough that the Arrow columns of one block and the one being stored stay a few tens of MB
# (bench/ingest_memory.py). 32 MB blocks cost the writer about a sixth less per row than 8 MB ones,
# and the load's peak memory some hundreds of MB more: not taken.
BLOCK_BYTES = 8 << 20
# What the column expressions decide; everything else goes to the record validator (see the docstring).
_WHOLE = r"^[+-]?[0-9]{1,18}$"  # 18 digits always fit a BIGINT; more digits: the record validator
_DECIMAL = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]{1,2})?$"  # finite for any 30 characters
_DECIMAL_MAX_CHARS = 30
_TIMESTAMP = (r"^(?P<y>[0-9]{4})-(?P<mo>[0-9]{2})-(?P<d>[0-9]{2})[T ](?P<h>[0-9]{2}):(?P<mi>[0-9]{2}):(?P<s>[0-9]{2})"
              r"(?:\.(?P<f>[0-9]{1,6}))?(?P<tz>Z|[+-][0-9]{2}:[0-9]{2})?$")
_NOT_PLAIN = r"[^\t\x20-\x7e]"  # beyond printable ASCII and tab: str.strip() differs from Arrow's trim
_TEXT_BLANKS = " \t"  # what str.strip() removes from printable ASCII
_US = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _us(dt: datetime) -> int:
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * _US + delta.microseconds


_MIN_UTC_US = _us(datetime(1, 1, 1, tzinfo=timezone.utc))  # Python's datetime holds no earlier time
_MAX_UTC_US = _us(datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=timezone.utc))

Replay = Callable[[str], tuple[Any, bytes]]  # one physical line -> (record or Unreadable, raw), as ingest.files reads it


@dataclass
class BlockVerdict:
    """What one block's lines came to."""
    accepted: pa.Table | None  # the kind's columns, raw_payload, __row (the line number)
    lines: int = 0  # physical lines in the block
    rejects: list[tuple[int, str, str, bytes]] = field(default_factory=list)  # (line, code, detail, raw)
    vector_codes: dict[int, str] = field(default_factory=dict)  # line -> code the column expressions found
    by_record_validator: int = 0  # rows the column expressions left to the record validator
    disagreements: int = 0  # rejected rows where the record validator found another code (kept)


@dataclass(frozen=True)
class Header:
    names: tuple[str, ...]
    text: str  # the header line as written, with its line end (to replay a row through the csv reader)

    @property
    def unknown(self) -> list[str]:
        return [n for n in self.names if n not in FIELD_SPECS[KIND]]


def read_header(line: str) -> Header | None:
    """The header of a plain CSV, or None when the per-record path should read the file (it says why)."""
    body = line.rstrip("\r\n")
    if not body.strip() or not body.isascii():
        return None
    names = tuple(h.strip() for h in next(csv.reader([body])))
    if len(set(names)) != len(names):
        return None  # duplicate_key for the whole file: the per-record path says so
    return Header(names, line if line.endswith("\n") else line + "\n")


def _mask(a) -> np.ndarray:
    return np.asarray(a.to_numpy(zero_copy_only=False), dtype=bool)


def _ints(a) -> np.ndarray:
    return np.asarray(pc.cast(pc.if_else(pc.is_null(a), "0", a), pa.int64()).to_numpy(zero_copy_only=False))


def _days_from_civil(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil), vectorised."""
    y = y - (m <= 2)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    doy = (153 * (m + np.where(m > 2, -3, 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def _days_in_month(y: np.ndarray, m: np.ndarray) -> np.ndarray:
    leap = ((y % 4 == 0) & (y % 100 != 0)) | (y % 400 == 0)
    days = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])[np.clip(m, 0, 12)]
    return days + ((m == 2) & leap)


class _Judge:
    """The running first-failure code of every row, and which rows are left to the record validator.

    Codes are kept as small integers (an index into ``names``; 0 for none): comparing an object array
    to None row by row cost more than all the checks together."""

    def __init__(self, n: int):
        self.code = np.zeros(n, dtype=np.int8)
        self.special = np.zeros(n, dtype=bool)
        self.names: list[str | None] = [None]

    @property
    def open(self) -> np.ndarray:
        return (self.code == 0) & ~self.special

    def fail(self, where: np.ndarray, code: str) -> None:
        hit = self.open & where
        if hit.any():
            if code not in self.names:
                self.names.append(code)
            self.code[hit] = self.names.index(code)

    def defer(self, where: np.ndarray) -> None:
        self.special |= self.open & where

    def code_of(self, j: int) -> str | None:
        return self.names[self.code[j]]


def _text_field(judge: _Judge, v, name: str, required: bool, typed: dict, trim: Callable) -> None:
    stripped = trim(v)
    empty = _mask(pc.equal(stripped, ""))
    if required:
        judge.fail(empty, "missing_field")
    typed[name] = pc.if_else(pa.array(empty), pa.scalar(None, pa.string()), stripped) if empty.any() else stripped


def _offsets(a: pa.Array) -> np.ndarray:
    """The value offsets of a string array without nulls (its own slice of them)."""
    return np.frombuffer(a.buffers()[1], dtype=np.int32, count=len(a) + 1, offset=a.offset * 4)


def _fixed_width(a: pa.Array, min_chars: int) -> np.ndarray | None:
    """The bytes of a string array as an (n, width) matrix, when every value has the same length (at least
    ``min_chars``) and none is null; else None."""
    if len(a) == 0 or a.null_count:
        return None
    offs = _offsets(a)
    widths = np.diff(offs)
    width = int(widths[0])
    if width < min_chars or widths.min() != width or widths.max() != width:
        return None
    return np.frombuffer(a.buffers()[2], dtype=np.uint8)[offs[0]:offs[-1]].reshape(len(a), width)


def _plain_whole_numbers(a: pa.Array) -> bool:
    """Whether every value is 1 to 18 ASCII digits (all match ``_WHOLE``, none signed): then a cast decides them."""
    if len(a) == 0 or a.null_count:
        return False
    offs = _offsets(a)
    widths = np.diff(offs)
    if widths.min() < 1 or widths.max() > 18:
        return False
    digits = np.frombuffer(a.buffers()[2], dtype=np.uint8)[offs[0]:offs[-1]]
    return bool((digits - np.uint8(48) < 10).all())  # uint8 wraps: bytes under '0' come out large


def judge_block(data: bytes, first_line: int, header: Header, ctx: ValidationContext, cap: int,
                replay: Replay) -> BlockVerdict:
    """Judge a block of whole lines (``data``, from just after a line end) whose first line is ``first_line``."""
    lines, endings = split_block(data)
    plain = is_plain_bytes(data)
    columns = _csv_columns(data, header, lines, endings, cap) if plain else None
    return judge_lines(lines, endings, first_line, header, ctx, cap, replay, plain, columns,
                       blanks=b" " in data or b"\t" in data)


def _csv_columns(data: bytes, header: Header, lines: pa.Array, endings: np.ndarray,
                 cap: int) -> dict[str, pa.Array] | None:
    """The block's fields by column, read by Arrow's CSV reader, when every line is a row of the header's width.

    Only for blocks of printable ASCII with no blank line and no line over the record cap, and only when the
    reader finds as many rows as there are lines (quote characters are not in these files, so a comma
    always parts fields, as ``split_pattern`` parts them): otherwise None, and the lines are split one by one.
    """
    n, width = len(lines), len(header.names)
    if n == 0 or width < 2 or data.startswith((b"\n", b"\r")) or b"\n\n" in data or b"\n\r\n" in data:
        return None  # a blank line is a row of one empty field to the reader, and skipped here
    if int(pc.max(pc.binary_length(lines)).as_py()) + 2 > cap:
        return None
    names = [f"c{j}" for j in range(width)]  # the header's own names may be anything, even empty
    try:
        table = pcsv.read_csv(
            pa.py_buffer(data),
            read_options=pcsv.ReadOptions(column_names=names, use_threads=False, block_size=len(data) + 1),
            parse_options=pcsv.ParseOptions(quote_char=False, double_quote=False, escape_char=False,
                                            newlines_in_values=False, ignore_empty_lines=False),
            convert_options=pcsv.ConvertOptions(column_types={c: pa.string() for c in names},
                                                strings_can_be_null=False, quoted_strings_can_be_null=False))
    except pa.ArrowInvalid:  # a row of another width
        return None
    if table.num_rows != n:
        return None
    return {name: table.column(j).combine_chunks() for j, name in enumerate(header.names)}


def judge_lines(lines: pa.Array, endings: np.ndarray, first_line: int, header: Header, ctx: ValidationContext,
                cap: int, replay: Replay, plain_bytes: bool | None = None,
                columns: dict[str, pa.Array] | None = None, blanks: bool = True) -> BlockVerdict:
    """Judge a block's physical lines (without their line ends; ``endings`` their lengths, 0 for none).

    ``plain_bytes`` True: the block is known to hold only printable ASCII, tabs and line ends.
    ``columns``: every line's fields by column name (``_csv_columns``), when every line is a plain row of
    the header's width. ``blanks`` False: the block holds no space or tab, so no field needs trimming.
    """
    n = len(lines)
    line_no = first_line + np.arange(n, dtype=np.int64)
    ncols = len(header.names)
    verdict = BlockVerdict(accepted=None, lines=n)
    raw_of = lambda i: lines[int(i)].as_py().encode("utf-8")  # noqa: E731
    if columns is not None:  # every line a plain row of ncols fields, none blank or too long
        special_lines = np.zeros(n, dtype=bool)
        g = np.arange(n)
        cols = columns
        fields_of = lambda i: [columns[name][int(i)].as_py() for name in header.names]  # noqa: E731
    else:
        length = np.asarray(pc.binary_length(lines).to_numpy(zero_copy_only=False), dtype=np.int64)
        blank = length == 0
        too_long = length + endings > cap  # bytes >= characters: a non-ASCII line over it in bytes is replayed
        fields = pc.split_pattern(lines, ",")
        nvals = np.asarray(pc.list_value_length(fields).to_numpy(zero_copy_only=False), dtype=np.int64)
        ragged = ~blank & ~too_long & (nvals != ncols)
        not_plain = _mask(pc.match_substring_regex(lines, _NOT_PLAIN)) if plain_bytes is False \
            else np.zeros(n, dtype=bool)
        special_lines = too_long | (~blank & ~ragged & not_plain)
        good = ~blank & ~too_long & ~ragged & ~not_plain
        for i in np.flatnonzero(ragged):
            verdict.rejects.append((int(line_no[i]), "malformed_csv",
                                    f"line {line_no[i]}: {nvals[i]} values for {ncols} columns", raw_of(i)))
            verdict.vector_codes[int(line_no[i])] = "malformed_csv"
        g = np.flatnonzero(good)
        gfields = fields if len(g) == n else fields.take(pa.array(g, pa.int64()))
        cols = {name: pc.list_element(gfields, j) for j, name in enumerate(header.names)}
        fields_of = lambda i: fields[int(i)].as_py()  # noqa: E731
    trim = (lambda v: pc.utf8_trim(v, _TEXT_BLANKS)) if blanks else (lambda v: v)
    judge = _Judge(len(g))
    typed: dict[str, Any] = {}
    utc_us = np.zeros(len(g), dtype=np.int64)
    if header.unknown:
        judge.fail(np.ones(len(g), dtype=bool), "unknown_field")
    else:
        for name, spec in FIELD_SPECS[KIND].items():
            v = cols.get(name)
            if v is None:  # no such column: absent in every row
                if spec.required:
                    judge.fail(np.ones(len(g), dtype=bool), "missing_field")
                typed[name] = pa.nulls(len(g), pa.string())
                continue
            if name in ("sensor_id", "metric", "unit"):
                _text_field(judge, v, name, spec.required, typed, trim)
            elif name == "seq":
                s = trim(v)
                if _plain_whole_numbers(s):  # every row present, unsigned and of at most 18 digits
                    typed[name] = pc.cast(s, pa.int64())
                    continue
                judge.fail(_mask(pc.equal(s, "")), "missing_field")
                whole = _mask(pc.match_substring_regex(s, _WHOLE))
                judge.defer(~whole)
                seq = _ints(pc.if_else(pa.array(whole), pc.replace_substring_regex(s, r"^\+", ""), "0"))
                judge.fail(seq < 0, "negative_count")  # 18 digits stay under INT64_MAX (value_out_of_range)
                assert 10**18 - 1 < INT64_MAX
                typed[name] = pa.array(seq, pa.int64())
            elif name == "ts":
                utc_us = _timestamp_field(judge, trim(v))
            elif name == "value":
                s = trim(v)
                judge.fail(_mask(pc.equal(s, "")), "missing_field")
                plain = _mask(pc.match_substring_regex(s, _DECIMAL)) & \
                    (np.asarray(pc.utf8_length(s).to_numpy(zero_copy_only=False)) <= _DECIMAL_MAX_CHARS)
                judge.defer(~plain)
                typed[name] = pc.cast(s if plain.all() else pc.if_else(pa.array(plain), s, "0"), pa.float64())
        # after the fields: a placeholder date, then the reading's own checks (ingest.records._check_reading)
        judge.fail(utc_us < _us(datetime.combine(ctx.earliest_date, datetime.min.time(), timezone.utc)),
                   "date_too_old")
        now_us = _us(ctx.now) + int(ctx.max_future_skew.total_seconds() * _US)
        judge.fail(utc_us > now_us, "future_timestamp")
        if ctx.check_registries:
            known = pa.array(sorted(ctx.sensor_ids), pa.string())
            judge.fail(~_mask(pc.fill_null(pc.is_in(typed["sensor_id"], value_set=known), False)), "unknown_sensor")

    ok = judge.open
    if ok.any():
        verdict.accepted = _accepted_table(ok, g, line_no, lines, typed, utc_us)
    python_rows: list[dict] = []
    for j in np.flatnonzero(judge.code):
        i = g[j]
        code = judge.code_of(j)
        verdict.vector_codes[int(line_no[i])] = code
        _judge_one(verdict, int(line_no[i]), dict(zip(header.names, fields_of(i))), raw_of(i), ctx,
                   python_rows, expected=code)
    for i in sorted([*g[judge.special], *np.flatnonzero(special_lines)]):
        verdict.by_record_validator += 1
        ending = "\r\n" if endings[i] == 2 else "\n"
        record, raw = replay(header.text + lines[int(i)].as_py() + ending)
        if not isinstance(record, dict):  # an Unreadable: (code, detail)
            verdict.rejects.append((int(line_no[i]), record.code, record.detail, raw))
        elif len(raw) > cap:
            verdict.rejects.append((int(line_no[i]), "payload_too_large", f"{len(raw):,} bytes; the limit is {cap:,}",
                                    raw[:cap]))
        else:
            _judge_one(verdict, int(line_no[i]), record, raw, ctx, python_rows)
    if python_rows:
        extra = _python_rows_table(python_rows)
        verdict.accepted = extra if verdict.accepted is None else \
            pa.concat_tables([verdict.accepted, extra]).sort_by("__row")
    return verdict


def _timestamp_field(judge: _Judge, s) -> np.ndarray:
    """UTC microseconds of ``ts`` (trimmed); codes for a missing one, no offset, or one outside the years 1 to 9999."""
    fixed = _fixed_width(s, 19)  # the usual file: every time written alike (no value is then missing)
    if fixed is not None:
        parts = _timestamp_parts_fixed(fixed)
    else:
        judge.fail(_mask(pc.equal(s, "")), "missing_field")
        parts = _timestamp_parts(s)
    matched, y, mo, d, h, mi, sec, us, no_zone, sign, oh, om = parts
    judge.defer(~matched)
    valid = (y >= 1) & (mo >= 1) & (mo <= 12) & (d >= 1) & (d <= _days_in_month(y, mo)) & (h <= 23) & (mi <= 59) \
        & (sec <= 59) & (oh <= 23) & (om <= 59)
    judge.defer(~valid)  # an impossible date or hour: the record validator words it
    judge.fail(no_zone, "timestamp_without_timezone")
    local_us = (_days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec) * _US + us
    utc = local_us - sign * (oh * 3600 + om * 60) * _US
    # 0001-01-01T00:00+08:00 is in year 0 in UTC: the record validator's OverflowError (date_too_old for
    # year 1, future_timestamp for 9999), found while the field is parsed, before the later fields.
    judge.fail((utc < _MIN_UTC_US) & (y == 1), "date_too_old")
    judge.fail((utc < _MIN_UTC_US) | (utc > _MAX_UTC_US), "future_timestamp")
    return utc


# Where ``_TIMESTAMP`` puts the digits of year, month, day, hour, minute and second, and its separators.
_TS_DIGITS = (0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18)
_TS_SEPARATORS = ((4, b"-"), (7, b"-"), (10, b"T "), (13, b":"), (16, b":"))


def _timestamp_parts_fixed(m: np.ndarray):
    """``_timestamp_parts`` for a column whose values all have one length (an (n, width) byte matrix): the
    same answers from byte arithmetic, with no per-row string kernels. A row that does not match
    ``_TIMESTAMP`` exactly comes back unmatched (the record validator decides it, as on the other path)."""
    n, width = m.shape
    c = np.ascontiguousarray(m.T)  # c[k]: the k-th character of every value, side by side
    num = [c[k] - np.uint8(48) for k in range(width)]  # a digit's value; any other byte wraps to 10 or more
    matched = np.ones(n, dtype=bool)
    for k in _TS_DIGITS:
        matched &= num[k] < 10
    for k, allowed in _TS_SEPARATORS:
        matched &= (c[k] == allowed[0]) | (c[k] == allowed[-1])

    def number(*at: int) -> np.ndarray:
        out = np.zeros(n, dtype=np.int64)
        for k in at:
            out = out * 10 + num[k]
        return np.where(matched, out, 0)  # unmatched: kept small (they are deferred)

    y, mo, d, h, mi, sec = number(0, 1, 2, 3), number(5, 6), number(8, 9), number(11, 12), number(14, 15), \
        number(17, 18)
    tail = width - 19
    # The zone, by its own shape: Z, or a sign, two digits, a colon and two digits at the end.
    zulu = c[-1] == ord("Z")
    signed = np.zeros(n, dtype=bool)
    oh = om = np.zeros(n, dtype=np.int64)
    if tail >= 6:
        signed = ((c[-6] == ord("+")) | (c[-6] == ord("-"))) & (num[-5] < 10) & (num[-4] < 10) \
            & (c[-3] == ord(":")) & (num[-2] < 10) & (num[-1] < 10)
        oh = np.where(signed, num[-5].astype(np.int64) * 10 + num[-4], 0)
        om = np.where(signed, num[-2].astype(np.int64) * 10 + num[-1], 0)
    sign = np.where(signed & (c[-6] == ord("-")), -1, 1) if tail >= 6 else np.ones(n, dtype=np.int64)
    us = np.zeros(n, dtype=np.int64)
    fraction_ok = np.zeros(n, dtype=bool)
    for zone_chars, rows in ((0, ~zulu & ~signed), (1, zulu), (6, signed)):
        chars = tail - zone_chars  # the fraction's, with its point
        if chars == 0:
            fraction_ok |= rows
        elif 2 <= chars <= 7:
            ok = rows & (c[19] == ord("."))
            value = np.zeros(n, dtype=np.int64)
            for k in range(20, 19 + chars):
                ok &= num[k] < 10
                value = value * 10 + num[k]
            fraction_ok |= ok
            us = np.where(ok, value * 10 ** (7 - chars), us)
    matched &= fraction_ok
    return matched, y, mo, d, h, mi, sec, us, ~zulu & ~signed, sign, oh, om


def _timestamp_parts(s):
    """(matched, year, month, day, hour, minute, second, microseconds, no zone, offset sign, hours, minutes)
    of every value, read with string kernels; the numbers of an unmatched value mean nothing."""
    matched = _mask(pc.match_substring_regex(s, _TIMESTAMP))
    s = pc.if_else(pa.array(matched), s, "1970-01-01T00:00:00Z")
    # The pattern fixed where the date and time are; after them an optional fraction, then the offset.
    y, mo, d, h, mi, sec = (_ints(pc.utf8_slice_codeunits(s, a, b))
                            for a, b in ((0, 4), (5, 7), (8, 10), (11, 13), (14, 16), (17, 19)))
    tail = pc.utf8_slice_codeunits(s, 19)
    us = np.zeros(len(s), dtype=np.int64)
    if pc.any(pc.starts_with(tail, ".")).as_py():
        frac = pc.utf8_slice_codeunits(pc.replace_substring_regex(tail, r"(Z|[+-][0-9]{2}:[0-9]{2})$", ""), 1)
        us = _ints(pc.if_else(pc.equal(frac, ""), "0", pc.utf8_rpad(frac, 6, "0")))
    last6 = pc.utf8_slice_codeunits(s, -6)
    zulu = _mask(pc.ends_with(s, "Z"))
    signed = _mask(pc.starts_with(last6, "+")) | _mask(pc.starts_with(last6, "-"))
    offset_text = pc.if_else(pa.array(signed), last6, "+00:00")
    sign = np.where(_mask(pc.starts_with(offset_text, "-")), -1, 1)
    oh = _ints(pc.utf8_slice_codeunits(offset_text, 1, 3))
    om = _ints(pc.utf8_slice_codeunits(offset_text, 4, 6))
    return matched, y, mo, d, h, mi, sec, us, ~zulu & ~signed, sign, oh, om


def _accepted_table(ok: np.ndarray, g: np.ndarray, line_no: np.ndarray, lines: pa.Array, typed: dict,
                    utc_us: np.ndarray) -> pa.Table:
    every = bool(ok.all()) and len(g) == len(lines)  # the usual block: nothing to pick out
    take = None if every else pa.array(np.flatnonzero(ok), pa.int64())
    pick = (lambda a: a) if every else (lambda a: a.take(take))  # noqa: E731
    return pa.table({
        "sensor_id": pick(typed["sensor_id"]), "seq": pick(typed["seq"]),
        "ts": pa.array(utc_us if every else utc_us[ok], pa.timestamp("us", tz="UTC")),
        "metric": pick(typed["metric"]), "value": pick(typed["value"]), "unit": pick(typed["unit"]),
        "raw_payload": pc.cast(lines if every else lines.take(pa.array(g[ok], pa.int64())), pa.binary()),
        "__row": pa.array(line_no if every else line_no[g[ok]], pa.int64()),
    })


def _judge_one(verdict: BlockVerdict, line: int, record: dict, raw: bytes, ctx: ValidationContext,
               python_rows: list[dict], expected: str | None = None) -> None:
    """One row through the record validator (as ingest.batch.BatchBuilder.add judges it)."""
    try:
        row = validate_record(KIND, record, ctx, from_text=True)
    except Reject as rej:
        code, detail = rej.code, rej.detail
    except Exception as exc:  # an input the validator does not foresee
        log.warning("validating a reading on line %d failed", line, exc_info=True)
        code, detail = "unexpected_error", describe_exception(exc)
    else:
        if expected is not None:
            verdict.disagreements += 1
            log.error("bulk readings: line %d was judged %s by column expressions, valid by the record validator",
                      line, expected)
        row["raw_payload"], row["__row"] = raw, line
        python_rows.append(row)
        return
    if expected is not None and code != expected:
        verdict.disagreements += 1
        log.error("bulk readings: line %d was judged %s by column expressions, %s by the record validator",
                  line, expected, code)
    verdict.rejects.append((line, code, detail, raw))


def _python_rows_table(rows: list[dict]) -> pa.Table:
    return pa.table({
        "sensor_id": pa.array([r["sensor_id"] for r in rows], pa.string()),
        "seq": pa.array([r["seq"] for r in rows], pa.int64()),
        "ts": pa.array([r["ts"] for r in rows], pa.timestamp("us", tz="UTC")),
        "metric": pa.array([r["metric"] for r in rows], pa.string()),
        "value": pa.array([r["value"] for r in rows], pa.float64()),
        "unit": pa.array([r["unit"] for r in rows], pa.string()),
        "raw_payload": pa.array([r["raw_payload"] for r in rows], pa.binary()),
        "__row": pa.array([r["__row"] for r in rows], pa.int64()),
    })


def is_plain_bytes(data: bytes) -> bool:
    """Whether a block holds only printable ASCII, tabs and line ends (then no line needs the regex)."""
    if not data.isascii():
        return False
    b = np.frombuffer(data, dtype=np.uint8)
    controls = b[b < 0x20]  # line ends and tabs: about one a line
    return bool(((controls == 0x0A) | (controls == 0x0D) | (controls == 0x09)).all())


def split_block(data: bytes) -> tuple[pa.Array, np.ndarray]:
    """A block of whole lines as (lines without their line ends, each line end's length).

    Only ``\\r\\n`` and ``\\n`` end lines here (the file ingestor sends no file with a lone ``\\r``).
    """
    buf = pa.py_buffer(data)
    whole = pa.StringArray.from_buffers(1, pa.py_buffer(np.array([0, len(data)], dtype=np.int32)), buf)
    lines = pc.list_flatten(pc.split_pattern(whole, "\n"))
    terminated = data.endswith(b"\n")
    if terminated:
        lines = lines.slice(0, len(lines) - 1)
    endings = np.ones(len(lines), dtype=np.int64)
    if not terminated and len(lines):
        endings[-1] = 0
    if b"\r" in data:
        cr = _mask(pc.ends_with(lines, "\r"))
        endings += cr
        lines = pc.replace_substring(lines, "\r", "")
    return lines, endings
