"""The benchmark apps: the same three endpoints written once per framework.

Every app serves exactly the same work (see `_common.py`): `GET /hello`,
`POST /signup` with one background task, `GET /items/{item_id}?q=` with one
dependency. ASGI apps use async handlers and an async task; WSGI apps use sync
ones, as each framework's users would write them.
"""
