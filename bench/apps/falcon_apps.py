"""The scenarios in Falcon, as an ASGI app (`asgi`) and a WSGI app (`wsgi`).

Falcon ASGI schedules the task with `resp.schedule`. Falcon WSGI has no
background tasks of its own, so its signup body is the same close()-hook
iterable the bare WSGI app uses (PEP 3333's way to run code after a response).
"""

from __future__ import annotations

import functools
import json

import falcon
import falcon.asgi

from bench.apps._common import current_owner, record_signup, record_signup_async, valid_signup
from bench.apps.bare_wsgi import BodyThenTask


class Hello:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"message": "hello"}


class Signup:
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        data = req.get_media(default_when_empty=None)
        if not valid_signup(data):
            raise falcon.HTTPUnprocessableEntity(description="invalid body")
        body = json.dumps({"status": "ok", "email": data["email"]}).encode()
        resp.content_type = falcon.MEDIA_JSON
        resp.content_length = len(body)
        resp.stream = BodyThenTask(body, record_signup, data["email"])


class Item:
    def on_get(self, req: falcon.Request, resp: falcon.Response, item_id: int) -> None:
        resp.media = {"item_id": item_id, "q": req.get_param("q"), "owner": current_owner()}


class HelloAsync:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = {"message": "hello"}


class SignupAsync:
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        data = await req.get_media(default_when_empty=None)
        if not valid_signup(data):
            raise falcon.HTTPUnprocessableEntity(description="invalid body")
        email = data["email"]
        resp.media = {"status": "ok", "email": email}
        resp.schedule(functools.partial(record_signup_async, email))


class ItemAsync:
    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, item_id: int
    ) -> None:
        resp.media = {"item_id": item_id, "q": req.get_param("q"), "owner": current_owner()}


wsgi = falcon.App()
wsgi.add_route("/hello", Hello())
wsgi.add_route("/signup", Signup())
wsgi.add_route("/items/{item_id:int}", Item())

asgi = falcon.asgi.App()
asgi.add_route("/hello", HelloAsync())
asgi.add_route("/signup", SignupAsync())
asgi.add_route("/items/{item_id:int}", ItemAsync())
