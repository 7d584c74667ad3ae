"""Brenia's URLs plus ``POST /bench/hello``: the hello-world ``bench/submissions.py``
compares Brenia's job submission with, served by the same daphne process.

The hello endpoint does what every django-ninja POST does and nothing more: parse a
small JSON body into a Schema, answer JSON. It runs through the same middleware stack
as Brenia's API (it is in the same project), without authentication.
"""

from __future__ import annotations

from django.urls import path
from ninja import NinjaAPI, Schema

from brenia.urls import urlpatterns as brenia_urlpatterns

hello_api = NinjaAPI(title="bench hello", version="bench", urls_namespace="bench_hello",
                     docs_url=None, openapi_url=None)


class HelloIn(Schema):
    name: str
    count: int = 1


class HelloOut(Schema):
    message: str
    count: int


@hello_api.post("/hello", response=HelloOut)
async def hello(request: object, payload: HelloIn) -> dict[str, object]:
    return {"message": f"hello {payload.name}", "count": payload.count}


urlpatterns = [*brenia_urlpatterns, path("bench/", hello_api.urls)]
