"""Send Structured Reports on to a PACS or viewer (C-STORE SCU), retrying while the peer is down.

A background thread takes SRs from a queue, so a C-STORE from the device is answered as soon as
its SR is made, whether or not the destination is up. Each SR is tried `attempts` times with
doubling waits (0.5, 1, 2, 4 ... s, at most 30 s); one that never gets through is logged (and is
in --out when that was given).
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from edgeld.core.errors import UserError

COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"


@dataclass(frozen=True)
class Destination:
    host: str
    port: int
    ae_title: str

    @classmethod
    def parse(cls, text: str) -> "Destination":
        """HOST:PORT:AET, e.g. 127.0.0.1:11113:PACS."""
        host, _, rest = text.rpartition(":")
        host, _, port = host.rpartition(":")
        if not (host and port.isdigit() and 0 < int(port) < 65536 and 0 < len(rest) <= 16):
            raise UserError(f"--store-to must look like HOST:PORT:AET, e.g. 127.0.0.1:11113:PACS "
                            f"(AE title 1-16 characters; got {text!r})")
        return cls(host, int(port), rest)

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


class Forwarder:
    """A queue of SRs and the thread that C-STOREs them to one destination."""

    def __init__(self, destination: Destination, calling_ae: str, log: Callable[[str], None],
                 attempts: int = 6, first_wait_s: float = 0.5, max_wait_s: float = 30.0):
        self.destination, self.calling_ae, self.log = destination, calling_ae, log
        self.attempts, self.first_wait_s, self.max_wait_s = attempts, first_wait_s, max_wait_s
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="edgeld-forward", daemon=True)
        self._thread.start()

    def submit(self, sr: Any) -> None:
        self._queue.put(sr)

    def close(self, timeout_s: float) -> bool:
        """Finish the SRs queued so far (their retries included), up to `timeout_s`; True when
        all were handled."""
        self._queue.put(None)
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while (sr := self._queue.get()) is not None:
            self._deliver(sr)

    def _deliver(self, sr: Any) -> None:
        wait = self.first_wait_s
        for attempt in range(1, self.attempts + 1):
            problem = self._send_once(sr)
            if problem is None:
                self.log(f"sent SR {sr.SOPInstanceUID} to {self.destination}")
                return
            if attempt < self.attempts:
                self.log(f"{self.destination}: {problem}; retrying in {wait:g} s")
                time.sleep(wait)
                wait = min(wait * 2, self.max_wait_s)
        self.log(f"error: SR {sr.SOPInstanceUID} not delivered to {self.destination} after "
                 f"{self.attempts} attempts: {problem}")

    def _send_once(self, sr: Any) -> str | None:
        """One association and C-STORE; None on success, else what went wrong."""
        from pynetdicom import AE

        ae = AE(ae_title=self.calling_ae)
        ae.add_requested_context(COMPREHENSIVE_3D_SR)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
        assoc = ae.associate(self.destination.host, self.destination.port,
                             ae_title=self.destination.ae_title)
        if not assoc.is_established:
            return "association not established (peer down or refused us)"
        try:
            status = assoc.send_c_store(sr)
        finally:
            assoc.release()
        code = getattr(status, "Status", None)
        if code is None:
            return "no C-STORE response (timeout or abort)"
        return None if code == 0x0000 or 0xB000 <= code <= 0xBFFF else f"C-STORE status 0x{code:04X}"
