"""The plain HTML pages served by Flask for signing in and out: no scripts, no external assets.

Styles are inline (the app's CSP allows inline style attributes, never inline script), colours are
the wall-screen theme's, and every value put into the page is HTML-escaped.
"""
from __future__ import annotations

from markupsafe import escape

FAILURE_MESSAGE = ("Sign-in failed. Check the name and password. After repeated failures, each further "
                   "attempt must wait a little longer.")
_STYLE = """
body{margin:0;background:#101418;color:#e8eaed;font-family:"DejaVu Sans",Verdana,sans-serif;font-size:18px}
main{max-width:26rem;margin:12vh auto;background:#1a2027;border-radius:6px;padding:1.4rem 1.6rem}
h1{font-size:1.5rem;margin:0 0 .2rem;color:#56B4E9}p{line-height:1.4}.muted{color:#9aa4ae;font-size:.95rem}
label{display:block;margin:.8rem 0 .2rem}input{width:100%;box-sizing:border-box;font-size:1.1rem;padding:.45rem;
background:#0b0e11;color:#e8eaed;border:1px solid #2a323b;border-radius:4px}
button{margin-top:1.1rem;font-size:1.1rem;padding:.5rem 1.2rem;background:#0072B2;color:#fff;border:0;
border-radius:4px;cursor:pointer}.msg{border-left:6px solid #D55E00;padding:.3rem .6rem;background:#101418}
.note{border-left:6px solid #56B4E9;padding:.3rem .6rem;background:#101418}a{color:#56B4E9}
"""


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><meta name="robots" '
            f'content="noindex"><style>{_STYLE}</style></head><body><main>{body}</main></body></html>')


def login_page(city: str, csrf: str, next_path: str, *, message: str | None = None, note: str | None = None,
               signed_in_as: str | None = None) -> str:
    parts = [f"<h1>pheoc</h1><p class=\"muted\">{escape(city)} · sign in</p>"]
    if note:
        parts.append(f'<p class="note">{escape(note)}</p>')
    if message:
        parts.append(f'<p class="msg" role="alert">{escape(message)}</p>')
    if signed_in_as:
        parts.append(f'<p class="note">Signed in as {escape(signed_in_as)}. '
                     f'<a href="/logout">Sign out</a> or <a href="{escape(next_path)}">continue</a>.</p>')
    parts.append(
        '<form method="post" action="/login" autocomplete="on">'
        f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
        f'<input type="hidden" name="next" value="{escape(next_path)}">'
        '<label for="username">Name</label>'
        '<input id="username" name="username" autocomplete="username" autocapitalize="none" required autofocus>'
        '<label for="password">Password</label>'
        '<input id="password" name="password" type="password" autocomplete="current-password" required>'
        '<button type="submit">Sign in</button></form>'
        '<p class="muted">Without signing in you see the public overview only. <a href="/">Open it</a>.</p>')
    return _page("pheoc · sign in", "".join(parts))


def signed_out_page() -> str:
    return _page("pheoc · signed out", '<h1>pheoc</h1><p class="note">You are signed out.</p>'
                 '<p><a href="/login">Sign in again</a> · <a href="/">Public overview</a></p>')


def forbidden_page(role: str, what: str) -> str:
    return _page("pheoc · not allowed", f'<h1>Not allowed</h1><p class="msg">The role <b>{escape(role)}</b> may '
                 f'not open {escape(what)}. This refusal is recorded.</p><p><a href="/">Overview</a> · '
                 '<a href="/login">Sign in as someone else</a></p>')


def message_page(title: str, text: str) -> str:
    return _page(f"pheoc · {title}", f"<h1>{escape(title)}</h1><p>{escape(text)}</p><p><a href=\"/login\">"
                 "Back to sign-in</a></p>")
