"""The one exception to the Content-Security-Policy: Django's own admin pages.

Django's admin templates still carry a few ``style`` attributes, so under ``/admin/``
inline styles are allowed. Scripts stay ``'self'`` everywhere, the admin included.
"""

from __future__ import annotations

from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.utils.deprecation import MiddlewareMixin

ADMIN_PREFIX = "/admin/"


class AdminInlineStylesMiddleware(MiddlewareMixin):
    """Sits inside django-csp's middleware, which reads ``_csp_update`` off the response.

    ``MiddlewareMixin`` keeps it usable by async views without a thread hop.
    """

    def process_response(self, request: HttpRequest,
                         response: HttpResponseBase) -> HttpResponseBase:
        if request.path.startswith(ADMIN_PREFIX):
            response._csp_update = {"style-src": ["'unsafe-inline'"]}  # type: ignore[attr-defined]
        return response
