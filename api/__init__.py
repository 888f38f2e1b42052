"""The JSON API under /api/v1: thin handlers over the same read models as the pages.

``install_api(app)`` registers the blueprint. A request authenticates with the browser session
(auth.web) or ``Authorization: Bearer <token>`` (auth.tokens); without either it acts as the public
and gets the public subset (area and city figures, small counts withheld). Errors are JSON:
400 names the bad parameter, 401 when credentials are needed (or a token is bad), 403 when the
caller may not, 404 when nothing is stored for what was asked; never a stack trace.
"""
from api.v1 import install_api

__all__ = ["install_api"]
