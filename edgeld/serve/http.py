"""`edgeld serve http`: the detector behind FastAPI on uvicorn (the `serve` extra).

GET /healthz, GET /v1/model (the `info --json` record, refiners under "refiners"), POST /v1/detect
(an image file as multipart field `image`, or as the raw body; optional `spacing_mm` as a query
or form field) answering the `predict --json` record. Every error is JSON {"error": ...} with a
status that says what kind: 400 unreadable input, 413 too large, 415 wrong content type, 422 an
image the model cannot measure (with its record, whose `quality` says why).
"""
# no `from __future__ import annotations`: FastAPI reads the handlers' annotations, and `Request`
# is imported inside create_app (lazily), where a string annotation could not be resolved
from typing import Any

from edgeld.core.errors import UserError
from edgeld.core.spacing import parse_spacing
from edgeld.serve.service import DetectionService

# An uncompressed 16-bit 3000x2500 cephalogram is 15 MB; DICOM from a device can carry more
MAX_UPLOAD_BYTES = 64 * 1024 * 1024
# what a raw body may be declared as; multipart/form-data carries the file in the field `image`
RAW_TYPES = ("image/", "application/dicom", "application/octet-stream")


class HttpError(Exception):
    """An answer other than 200, with a JSON body."""

    def __init__(self, status: int, message: str, **extra: Any):
        super().__init__(message)
        self.status, self.body = status, {"error": message, **extra}


def create_app(service: DetectionService, max_upload_bytes: int = MAX_UPLOAD_BYTES):
    """The FastAPI application around one shared DetectionService."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool

    app = FastAPI(title="edgeld", version=service.version, docs_url=None, redoc_url=None)

    @app.exception_handler(HttpError)
    async def _error(_request: Request, exc: HttpError) -> JSONResponse:
        return JSONResponse(exc.body, status_code=exc.status)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "model": service.name}

    @app.get("/v1/model")
    async def model() -> dict[str, Any]:
        return service.info

    @app.post("/v1/detect")
    async def detect(request: Request) -> dict[str, Any]:
        data, label, spacing_text = await _read_upload(request, max_upload_bytes)
        spacing_text = request.query_params.get("spacing_mm") or spacing_text
        try:
            spacing = parse_spacing(spacing_text, "spacing_mm") if spacing_text else None
            # the detector runs in a worker thread so the event loop keeps answering meanwhile
            record = await run_in_threadpool(service.detect_bytes, data, label, spacing)
        except UserError as exc:
            raise HttpError(400, str(exc)) from None
        if not record["quality"]["usable"]:
            raise HttpError(422, f"{label}: not usable: {record['quality']['reason']}",
                            quality=record["quality"], record=record)
        return record

    return app


async def _read_upload(request, limit: int) -> tuple[bytes, str, str | None]:
    """The uploaded file's bytes, its label and a form `spacing_mm`, refusing a body over `limit`
    before reading it when it says its length, else as soon as it passes the limit."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    is_form = content_type == "multipart/form-data"
    if not is_form and not content_type.startswith(RAW_TYPES):
        raise HttpError(415, f"unsupported content type {content_type or '(none)'!r}: send the "
                             "image as multipart/form-data field 'image', or as the raw body "
                             "with an image/*, application/dicom or application/octet-stream type")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HttpError(413, f"upload of {int(declared)} bytes is over the {limit}-byte limit")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HttpError(413, f"upload is over the {limit}-byte limit")
    if not is_form:
        return bytes(body), "upload", None
    return await _form_file(request, bytes(body))


async def _form_file(request, body: bytes) -> tuple[bytes, str, str | None]:
    """Field `image` (and `spacing_mm`) of a multipart body already read (and size-checked)."""
    from starlette.requests import Request

    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form()
    except Exception as exc:  # noqa: BLE001 - python-multipart's parse errors vary by defect
        raise HttpError(400, f"malformed multipart body ({exc})") from None
    upload = form.get("image")
    if upload is None or isinstance(upload, str):
        raise HttpError(400, "multipart body has no file field 'image'")
    spacing = form.get("spacing_mm")
    return await upload.read(), upload.filename or "upload", spacing if isinstance(spacing, str) else None


def serve_http(service: DetectionService, host: str, port: int,
               max_upload_bytes: int = MAX_UPLOAD_BYTES, echo=print) -> None:
    """Run uvicorn until SIGINT/SIGTERM (it lets requests in flight finish before exiting)."""
    import signal

    import uvicorn

    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal under the
    # handler that was there before it; a no-op one makes that graceful stop exit with code 0
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    echo(f"edgeld: serving {service.name} over HTTP on http://{host}:{port} "
         "(GET /healthz, GET /v1/model, POST /v1/detect)")
    uvicorn.run(create_app(service, max_upload_bytes), host=host, port=port, log_level="warning",
                timeout_graceful_shutdown=30)
