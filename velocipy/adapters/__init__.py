"""Adapters: put the pure core on real servers (ASGI, WSGI, the built-in HTTP/1.1 server)."""
