"""Commands `users`, `tokens`, `audit verify` and `erase case`; app.py registers them with register_commands().

They open the database themselves, so they run while the server is stopped (one process owns the
DuckDB file); each change they make is written to the audit log as ``cli:<os user>``.
"""
from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable

from settings import load_settings
from store import Store

ConfigArg = Callable[[argparse.ArgumentParser], argparse.ArgumentParser]
_for_demo: Callable | None = None  # app.py's demo settings (the demo keeps its own database under demo.workdir)


def _settings(args):
    settings = load_settings(args.config)
    if getattr(args, "demo", False):
        if _for_demo is None:
            raise SystemExit("error: --demo is not available here")
        settings = _for_demo(settings)
    return settings


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no login name in some containers
        return "cli:unknown"


def _open_store(settings) -> Store:
    try:
        return Store(settings.path(settings.store.path), queue_size=settings.store.queue_size)
    except Exception as exc:
        raise SystemExit(f"error: cannot open {settings.path(settings.store.path)}: {exc}\n"
                         "(is the server running? stop it first: one process owns the database)") from None


def _read_password(args, confirm: bool = True) -> tuple[str, bool]:
    """(password, generated): from stdin with --password-stdin, a prompt on a terminal, else generated."""
    from auth.passwords import generate_password
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n"), False
    if sys.stdin.isatty():
        first = getpass.getpass("New password: ")
        if confirm and getpass.getpass("Repeat it: ") != first:
            raise SystemExit("error: the passwords differ")
        return first, False
    return generate_password(), True


def cmd_users(args) -> int:
    from auth.passwords import Passwords, WeakPassword
    from auth.users import UserError, add_user, reset_password, set_disabled
    from store import queries_access as qa

    settings = _settings(args)
    with _open_store(settings) as store:
        try:
            if args.users_command == "list":
                for u in qa.list_users(store):
                    bound = f" precincts={','.join(u.precincts)}" if u.precincts else ""
                    print(f"{u.username:<24} {u.role:<14} {'disabled' if u.disabled else 'active'}"
                          f" sessions={qa.active_sessions(store, u.username)}{bound}")
                return 0
            if args.users_command == "add":
                password, generated = _read_password(args)
                name = add_user(store, Passwords(settings.auth), args.name, args.role, password, actor=_actor(),
                                display_name=args.display_name, precincts=tuple(args.precinct or ()))
                print(f"added {name} ({args.role})" + (f"; password: {password}" if generated else ""))
            elif args.users_command == "reset-password":
                password, generated = _read_password(args)
                reset_password(store, Passwords(settings.auth), args.name, password, actor=_actor())
                print(f"password of {args.name} reset; its sessions ended"
                      + (f"; new password: {password}" if generated else ""))
            elif args.users_command in ("disable", "enable"):
                ended = set_disabled(store, args.name, args.users_command == "disable", actor=_actor())
                print(f"{args.name} {args.users_command}d" + (f"; {ended} session(s) ended" if ended else ""))
        except (UserError, WeakPassword) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return 0


def cmd_audit_verify(args) -> int:
    from auth.audit import verify_audit

    settings = _settings(args)
    with _open_store(settings) as store:
        report = verify_audit(store)
    head = f"head {report.head[0]} {report.head[1][:16]}…" if report.head else "empty"
    anchor = "anchor checked" if report.anchor else "no anchor file (head not checked)"
    if report.ok:
        print(f"audit log OK: {report.records} records, {head}, {anchor}"
              + (f", {len(report.redacted)} redacted by erasure" if report.redacted else ""))
        return 0
    print(f"audit log FAILED verification ({report.records} records, {head}):", file=sys.stderr)
    for problem in report.problems:
        print(f"  - {problem}", file=sys.stderr)
    return 1


def cmd_erase_case(args) -> int:
    from auth.erasure import erase_case

    settings = _settings(args)
    if sys.stdin.isatty() and not args.yes:
        typed = input(f"Erase case {args.case_id} from the database, the inbox and exports for good? "
                      "Type the id again to confirm: ").strip()
        if typed != args.case_id:
            print("not confirmed; nothing erased", file=sys.stderr)
            return 2
    db = settings.path(settings.store.path)
    if not db.exists():
        print(f"error: no database at {db}", file=sys.stderr)
        return 2
    _open_store(settings).close()  # fails clearly if the server holds the file
    report = erase_case(settings, args.case_id, _actor())
    if not report.found:
        print(f"case {args.case_id}: not found in the database or the landed files; nothing changed")
    else:
        rows = ", ".join(f"{t} {n}" for t, n in sorted(report.rows_changed.items())) or "none"
        print(f"erased: rows {rows}; audit records redacted {len(report.audit_redacted)}; "
              f"files rewritten {len(report.files_rewritten)}; database compacted")
        print(f"receipt: the audit log names this erasure sha256(salt + id) = {report.case_digest}")
        print(f"         salt = {report.salt}  (give it to the requester; it is stored nowhere)")
    if report.residual:
        print("WARNING: the id's bytes are still found in: " + ", ".join(map(str, report.residual)), file=sys.stderr)
        return 1
    return 0 if report.found else 1


def cmd_tokens(args) -> int:
    from auth.tokens import TokenError, create_token, revoke_token
    from store import queries_tokens as qt

    settings = _settings(args)
    with _open_store(settings) as store:
        if args.tokens_command == "add":
            try:
                token = create_token(store, args.name, args.role, tuple(args.precinct or ()), _actor())
            except TokenError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            print(f"added token {args.name.strip().lower()} ({args.role}); it is shown once, keep it secret:")
            print(token)
            return 0
        if args.tokens_command == "revoke":
            if not revoke_token(store, args.name.strip().lower(), _actor()):
                print(f"error: no active token named {args.name!r}", file=sys.stderr)
                return 2
            print(f"revoked token {args.name}")
            return 0
        for t in qt.list_tokens(store):
            state = f"revoked {t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "active"
            used = f"last used {t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never used"
            bound = f" precincts {','.join(t.precincts)}" if t.precincts else ""
            print(f"{t.name:<24} {t.role:<14} {state:<24} {used}{bound}")
        return 0


def register_commands(sub, with_config: ConfigArg, for_demo: Callable | None = None) -> None:
    """Add `users`, `audit` and `erase` to app.py's subcommands (``for_demo`` maps settings to the demo's)."""
    from auth.principal import ROLE_BY_NAME

    global _for_demo
    _for_demo = for_demo
    if for_demo is not None:
        plain = with_config

        def with_config(p):  # noqa: F811 - every command also takes --demo
            plain(p).add_argument("--demo", action="store_true", help="use the demo's database (demo.workdir)")
            return p

    roles = [r for r in ROLE_BY_NAME if r != "public"]
    users = sub.add_parser("users", help="add, disable, enable, reset or list users",
                           description="Manage who may sign in (run with the server stopped).")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    p = with_config(users_sub.add_parser("add", help="add a user"))
    p.add_argument("name")
    p.add_argument("--role", required=True, choices=roles)
    p.add_argument("--precinct", action="append", help="bind a police user to a precinct area id (repeatable)")
    p.add_argument("--display-name", default=None)
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin "
                   "(default: prompt on a terminal, else generate and print one)")
    for command, text in (("disable", "disable a user and end their sessions"), ("enable", "enable a user again")):
        p = with_config(users_sub.add_parser(command, help=text))
        p.add_argument("name")
    p = with_config(users_sub.add_parser("reset-password", help="set a new password and end the user's sessions"))
    p.add_argument("name")
    p.add_argument("--password-stdin", action="store_true")
    with_config(users_sub.add_parser("list", help="list users, roles and open sessions"))
    users.set_defaults(func=cmd_users)

    tokens = sub.add_parser("tokens", help="add, list or revoke API tokens",
                            description="Bearer tokens for the JSON API (run with the server stopped).")
    tokens_sub = tokens.add_subparsers(dest="tokens_command", required=True)
    p = with_config(tokens_sub.add_parser("add", help="make a token (printed once)"))
    p.add_argument("name")
    p.add_argument("--role", required=True, choices=roles)
    p.add_argument("--precinct", action="append", help="bind a police token to a precinct area id (repeatable)")
    p = with_config(tokens_sub.add_parser("revoke", help="revoke a token"))
    p.add_argument("name")
    with_config(tokens_sub.add_parser("list", help="list tokens, their roles and last use"))
    tokens.set_defaults(func=cmd_tokens)

    audit = sub.add_parser("audit", help="check the audit log's hash chain")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    p = with_config(audit_sub.add_parser("verify", help="detect altered, removed or inserted audit records"))
    p.set_defaults(func=cmd_audit_verify)

    erase = sub.add_parser("erase", help="erase personal data on request")
    erase_sub = erase.add_subparsers(dest="erase_command", required=True)
    p = with_config(erase_sub.add_parser("case", help="erase one case everywhere (server stopped)",
                                         description="Remove a case from every table, the quarantine, the audit "
                                         "details, the inbox's landed files and exports, then compact the database."))
    p.add_argument("case_id")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=cmd_erase_case)
