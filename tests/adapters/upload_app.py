"""The app the real-server upload tests serve: uploads hashed as they are read, never held whole."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from velocipy import Form, FormLimits, Request, UploadFile, VelociPy

app = VelociPy(form_limits=FormLimits(max_size=256 * 1024 * 1024))
wsgi = app.wsgi


@app.post("/digest")
async def digest(file: UploadFile, note: Annotated[str, Form()] = "") -> dict[str, Any]:
    hasher = hashlib.sha256()
    while chunk := await file.read(256 * 1024):
        hasher.update(chunk)
    return {
        "note": note,
        "filename": file.filename,
        "size": file.size,
        "sha256": hasher.hexdigest(),
        "on_disk": not file.in_memory,
    }


@app.post("/stream-digest")
async def stream_digest(request: Request) -> dict[str, Any]:
    """The raw body hashed as `request.stream()` pulls it: no piece is kept."""
    hasher = hashlib.sha256()
    size = 0
    async for chunk in request.stream():
        hasher.update(chunk)
        size += len(chunk)
    return {"size": size, "sha256": hasher.hexdigest()}
