"""TLS for the built-in server: the `ssl.SSLContext` built from the `--ssl-*` settings.

Options and defaults are uvicorn's (`--ssl-certfile`, `--ssl-keyfile`,
`--ssl-keyfile-password`, `--ssl-ca-certs`, `--ssl-ciphers`, `--ssl-cert-reqs`).
The handshake itself is the event loop's (`_channel`), bounded by the header
timeout so a client that never finishes it cannot hold a connection slot.
"""

from __future__ import annotations

import ssl

from ._config import ServerConfig


def ssl_context(config: ServerConfig) -> ssl.SSLContext | None:
    """The server-side TLS context for `config`, or None when TLS is off.

    Raises:
        OSError, ssl.SSLError: a file is missing or unreadable, the key does not
            match the certificate or its password is wrong.
    """
    if not config.ssl_certfile:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(
        config.ssl_certfile, config.ssl_keyfile, config.ssl_keyfile_password or None
    )
    context.verify_mode = ssl.VerifyMode(config.ssl_cert_reqs)
    if config.ssl_ca_certs:
        context.load_verify_locations(config.ssl_ca_certs)
    if config.ssl_ciphers:
        context.set_ciphers(config.ssl_ciphers)
    # One protocol on this server: say so in ALPN, so clients never try h2 on it.
    context.set_alpn_protocols(["http/1.1"])
    return context
