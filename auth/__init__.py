"""Access control for pheoc: logins, server-side sessions, the hash-chained audit trail and erasure.

``install_auth(app, runtime)`` (auth.web) wires it into the Dash app; auth.cli holds the commands
``users``, ``audit verify`` and ``erase case``. Roles and the permission table live in
auth/principal.py (request checks in auth/policy.py); SQL lives in store/queries_access.py. See docs/security.md.
"""
