"""Forms and uploads: urlencoded fields, files, both together, an optional file list."""

from __future__ import annotations

from typing import Annotated

from velocipy import File, Form, UploadFile, VelociPy

app = VelociPy()


@app.post("/login/")
async def login(
    username: Annotated[str, Form()], password: Annotated[str, Form(min_length=8)]
) -> dict[str, str]:
    return {"username": username}


@app.post("/files/")
async def create_file(file: Annotated[bytes, File()]) -> dict[str, int]:
    return {"file_size": len(file)}


@app.post("/uploadfile/")
async def create_upload_file(file: UploadFile) -> dict[str, str | None]:
    return {"filename": file.filename}


@app.post("/profile/")
async def create_profile(
    token: Annotated[str, Form()],
    avatar: Annotated[UploadFile, File(description="A square picture")],
    extras: Annotated[list[UploadFile] | None, File()] = None,
) -> dict[str, object]:
    return {"token": token, "avatar": avatar.filename, "extras": len(extras or [])}
