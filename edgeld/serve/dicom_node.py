"""`edgeld serve dicom`: a DICOM Storage SCP (pynetdicom) that answers each cephalogram it is sent
with a Structured Report of its landmarks (see sr.py).

It answers C-ECHO; accepts C-STORE of DX (for presentation and for processing), CR and secondary
capture images in the uncompressed transfer syntaxes, and refuses other SOP classes in the
association; with `allow_ae` it refuses unknown calling AE titles. For each image: read it with
the same reader and limits as `predict`, detect, build the SR, write it atomically into `out_dir`
and/or queue it for the destination (forward.py), then answer Success. An image that cannot be
read gets a failure status (0xC210, "cannot understand", with the reason as ErrorComment) and
nothing is written; an image the model cannot measure gets an SR that says so.

SIGTERM or SIGINT: stop accepting associations, let those in flight finish (their SRs included),
deliver what is queued, then exit; files are written whole or not at all.
"""
from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from edgeld.core.errors import UserError
from edgeld.data.dicom import image_from_dataset
from edgeld.serve.forward import Destination, Forwarder
from edgeld.serve.service import DetectionService
from edgeld.serve.sr import IMAGE_SOP_CLASSES, structured_report, write_sr

CANNOT_UNDERSTAND = 0xC210
PROCESSING_FAILURE = 0xC211
DATASET_DOES_NOT_MATCH = 0xA900
DRAIN_TIMEOUT_S = 60.0  # how long SIGTERM waits for associations and deliveries in flight


class DicomNode:
    """The C-STORE handler and everything it writes to, for one AE."""

    def __init__(self, service: DetectionService, ae_title: str, out_dir: str | Path | None,
                 destination: Destination | None, log: Callable[[str], None]):
        self.service, self.ae_title, self.log = service, ae_title, log
        self.out_dir = Path(out_dir) if out_dir else None
        self.forwarder = Forwarder(destination, ae_title, log) if destination else None
        self._in_flight = 0
        self._lock = threading.Lock()

    def handle_store(self, event: Any) -> Any:
        """EVT_C_STORE: the image in, its SR out; returns the status (a Dataset with a comment)."""
        with self._lock:
            self._in_flight += 1
        try:
            return _status(*self._store(event))
        finally:
            with self._lock:
                self._in_flight -= 1

    def _store(self, event: Any) -> tuple[int, str]:
        calling = event.assoc.requestor.ae_title
        try:
            ds = event.dataset
            ds.file_meta = event.file_meta
            uid = str(ds.SOPInstanceUID)
            if str(ds.get("SOPClassUID", "")) not in IMAGE_SOP_CLASSES:
                return DATASET_DOES_NOT_MATCH, "not a DX, CR or secondary capture image"
            image = image_from_dataset(ds, f"SOP instance {uid}")
        except UserError as exc:
            self.log(f"refused an image from {calling}: {exc}")
            return CANNOT_UNDERSTAND, str(exc)
        except Exception as exc:  # noqa: BLE001 - a malformed dataset fails wherever pydicom looks
            self.log(f"refused an image from {calling}: unreadable dataset ({exc})")
            return CANNOT_UNDERSTAND, f"unreadable dataset: {exc}"
        try:
            detection = self.service.detect(image.pixels, image.spacing_mm)
            sr = structured_report(ds, detection, self.service.name, self.service.stages,
                                   self.service.version)
            where = [str(write_sr(sr, uid, self.out_dir))] if self.out_dir else []
        except Exception as exc:  # noqa: BLE001 - the node keeps serving; the sender is told
            self.log(f"error: processing SOP instance {uid} from {calling} failed: {exc!r}")
            return PROCESSING_FAILURE, f"processing failed: {exc}"
        if self.forwarder:
            self.forwarder.submit(sr)
            where.append(f"queued for {self.forwarder.destination}")
        verdict = ("landmarks" if detection.quality.usable
                   else f"not usable: {detection.quality.reason}")
        if detection.anatomy_spacing_mm is not None:
            verdict += (f" (warning: pixel spacing {detection.spacing_mm[0]:g} mm contradicts the "
                        f"anatomy's {detection.anatomy_spacing_mm:.3g} mm)")
        self.log(f"{calling}: SOP instance {uid}: {verdict}; SR {sr.SOPInstanceUID} "
                 f"({', '.join(where) or 'not kept: no --out, no --store-to'})")
        return 0x0000, ""

    def idle(self) -> bool:
        with self._lock:
            return self._in_flight == 0


def _status(code: int, comment: str) -> Any:
    from pydicom.dataset import Dataset

    status = Dataset()
    status.Status = code
    if comment:
        status.ErrorComment = " ".join(comment.split())[:64]  # LO: 64 characters
    return status


def make_ae(node: DicomNode, allow_ae: Sequence[str]) -> Any:
    """The pynetdicom AE: Verification plus the image SOP classes, the calling AE title list."""
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    ae = AE(ae_title=node.ae_title)
    ae.add_supported_context(Verification)
    for sop_class in IMAGE_SOP_CLASSES:
        ae.add_supported_context(sop_class)
    if allow_ae:
        ae.require_calling_aet = list(allow_ae)
    ae.maximum_associations = 8
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 60
    return ae


def serve_dicom(node: DicomNode, host: str, port: int, allow_ae: Sequence[str]) -> None:
    """Listen until SIGTERM or SIGINT, then finish what is in flight (see the module doc)."""
    from pynetdicom import evt

    ae = make_ae(node, allow_ae)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = ae.start_server((host, port), block=False,
                             evt_handlers=[(evt.EVT_C_STORE, node.handle_store)])
    node.log(f"edgeld: DICOM node {node.ae_title} on {host}:{port} running {node.service.name} "
             f"(C-ECHO; C-STORE of {', '.join(IMAGE_SOP_CLASSES.values())})")
    while not stop.wait(0.5):
        pass
    node.log("edgeld: stopping: no new associations; finishing those in flight")
    server.shutdown()  # closes the listening socket; running associations go on in their threads
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while (ae.active_associations or not node.idle()) and time.monotonic() < deadline:
        time.sleep(0.05)
    if node.forwarder and not node.forwarder.close(max(0.0, deadline - time.monotonic())):
        node.log("error: SRs still queued for the destination at exit were not delivered")
    ae.shutdown()
    node.log("edgeld: stopped")
