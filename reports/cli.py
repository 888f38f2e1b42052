"""Commands ``briefing`` and ``export-open-data``; app.py registers them with register_commands().

They open the database themselves, so they work on a stopped server's database (one process owns the
DuckDB file). Each writes an ``export`` audit record as ``cli:<os user>`` with its purpose.
"""
from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

from auth.principal import ROLES, principal_for
from settings import load_settings
from store import Store

BRIEFING_ROLES = tuple(r.name for r in ROLES if "view_briefing" in principal_for("x", r.name).permissions)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a date YYYY-MM-DD, got {text!r}") from None


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no login name in some containers
        return "cli:unknown"


def _open(args) -> tuple[object, Store]:
    settings = load_settings(args.config)
    if args.demo:
        settings = _for_demo(settings)
    try:
        return settings, Store(settings.path(settings.store.path), queue_size=settings.store.queue_size)
    except Exception as exc:
        raise SystemExit(f"error: cannot open {settings.path(settings.store.path)}: {exc}\n"
                         "(is the server running? stop it first: one process owns the database)") from None


def cmd_briefing(args) -> int:
    from reports.briefing_pdf import RendererUnavailable, RenderError, make_briefing_pdf
    from services.briefing import NoBriefing, briefing_json
    from services.open_data import record_export

    settings, store = _open(args)
    with store:
        try:
            b, printed = make_briefing_pdf(store, settings, principal_for(_actor(), args.role, via="system"), args.date)
        except (NoBriefing, RendererUnavailable) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except RenderError as exc:
            print(f"error: the PDF could not be printed: {exc}", file=sys.stderr)
            return 1
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(printed.pdf)
        files = [str(args.out)]
        if args.json:
            args.json.write_text(json.dumps(briefing_json(b), ensure_ascii=False, indent=1), encoding="utf-8")
            files.append(str(args.json))
        record_export(store, _actor(), "briefing_pdf", args.purpose,
                      {"date": b.day.isoformat(), "role": args.role, "files": files})
    print(f"briefing of {b.day.isoformat()} written to {args.out} ({len(printed.pdf):,} bytes, "
          f"{printed.seconds:.1f} s)")
    return 0


def cmd_export_open_data(args) -> int:
    from services.open_data import write_open_data

    settings, store = _open(args)
    with store:
        try:
            written = write_open_data(store, settings, args.out, actor=_actor(), purpose=args.purpose, end=args.date)
        except LookupError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    for path in written:
        print(path)
    return 0


_for_demo: Callable = lambda s: s  # noqa: E731  (app.py's demo settings, set by register_commands)


def register_commands(sub, with_config, for_demo: Callable) -> None:
    global _for_demo
    _for_demo = for_demo
    p = with_config(sub.add_parser(
        "briefing", help="write the daily briefing as a PDF",
        description="Write the daily briefing of a day (default: the latest complete day) as an A4 PDF, as the "
                    "given role sees it. Works on a stopped server's database; needs Chromium to print."))
    p.add_argument("--date", type=_day, default=None, help="YYYY-MM-DD (default: the latest complete day)")
    p.add_argument("--out", type=Path, required=True, help="the PDF file to write")
    p.add_argument("--json", type=Path, default=None, help="also write the briefing as JSON to this file")
    p.add_argument("--role", choices=BRIEFING_ROLES, default="executive", help="whose view (default: executive)")
    p.add_argument("--purpose", default="daily briefing", help="why it is exported (kept in the audit log)")
    p.add_argument("--demo", action="store_true", help="use the demo's database (demo.workdir)")
    p.set_defaults(func=cmd_briefing)
    p = with_config(sub.add_parser(
        "export-open-data", help="write the open data (CSV and GeoJSON) to a folder",
        description="Write daily new cases per area and per coarse H3 cell (briefing.open_data_resolution) for the "
                    "briefing.open_data_days days to --date, as CSV and GeoJSON, cut to what the public may see "
                    "(small counts and their complements withheld)."))
    p.add_argument("--out", type=Path, required=True, help="the folder to write into (created)")
    p.add_argument("--purpose", default="open data publication", help="why it is exported (kept in the audit log)")
    p.add_argument("--date", type=_day, default=None, help="the last day (default: the latest complete day)")
    p.add_argument("--demo", action="store_true", help="use the demo's database (demo.workdir)")
    p.set_defaults(func=cmd_export_open_data)
