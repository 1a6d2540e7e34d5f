"""The upload scenario in VelociPy and in FastAPI: a 1 KB form field and a 1 MB file, read whole.

Both handlers do the same work: read the file in 256 KiB pieces, count it, and
answer the field's length and the file's size.
"""

from __future__ import annotations

from typing import Annotated, Any

import fastapi

import velocipy

velocipy_app = velocipy.VelociPy()
fastapi_app = fastapi.FastAPI()


@velocipy_app.post("/upload")
async def velocipy_upload(
    note: Annotated[str, velocipy.Form()], file: velocipy.UploadFile
) -> dict[str, Any]:
    size = 0
    while chunk := await file.read(256 * 1024):
        size += len(chunk)
    return {"note": len(note), "filename": file.filename, "size": size}


@fastapi_app.post("/upload")
async def fastapi_upload(
    note: Annotated[str, fastapi.Form()], file: fastapi.UploadFile
) -> dict[str, Any]:
    size = 0
    while chunk := await file.read(256 * 1024):
        size += len(chunk)
    return {"note": len(note), "filename": file.filename, "size": size}
