"""Round-trip latency of `edgeld serve http` and `edgeld serve dicom` beside the direct API.

    python benchmarks/serve/bench_serve.py [--runs 20] [--out benchmarks/serve/results.json]

Each service is a real `edgeld` process on 127.0.0.1 running the shipped cascade
(isbi2015-student + isbi2015-refiner, torch CPU, as `edgeld serve` runs built-in names). Timed:
- direct API: read the film and `DetectionService.detect` in this process (what a request does);
- HTTP: POST /v1/detect of the JPEG as multipart, until the JSON answer is read;
- DICOM: C-STORE of the film as a DX dataset, until the SR arrives at a receiving SCP here.
One warm-up each, then `runs` sequential requests; p50 and p90 in ms.
"""
from __future__ import annotations

import argparse
import json
import queue
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image
from pynetdicom import AE, evt

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from test_serve import make_dx  # noqa: E402  (the DX dataset the tests send)

from edgeld.data.images import load_grayscale  # noqa: E402
from edgeld.demo import SAMPLES  # noqa: E402
from edgeld.serve.service import DetectionService  # noqa: E402

MODEL = ["isbi2015-student", "--refiner", "isbi2015-refiner"]
FILM = SAMPLES / "images" / "151.jpg"
DX = "1.2.840.10008.5.1.4.1.1.1.1"
SR = "1.2.840.10008.5.1.4.1.1.88.34"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentiles(times_s: list[float]) -> dict[str, float]:
    ms = np.asarray(times_s) * 1e3
    return {"p50": round(float(np.percentile(ms, 50)), 1), "p90": round(float(np.percentile(ms, 90)), 1),
            "runs": len(ms)}


def time_direct(runs: int) -> dict[str, float]:
    service = DetectionService(MODEL[0], [MODEL[2]])
    times = []
    for i in range(runs + 1):
        t = time.perf_counter()
        service.detect(load_grayscale(FILM), (0.1, 0.1))
        times.append(time.perf_counter() - t)
    return percentiles(times[1:])


def time_http(runs: int) -> dict[str, float]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "edgeld", "serve", "http", *MODEL, "--port",
                             str(port)], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        body, times = FILM.read_bytes(), []
        with httpx.Client(timeout=60) as client:
            for i in range(runs + 1):
                t = time.perf_counter()
                answer = client.post(f"{url}/v1/detect", files={"image": ("151.jpg", body)},
                                     data={"spacing_mm": "0.1"})
                answer.json()
                times.append(time.perf_counter() - t)
                assert answer.status_code == 200, answer.text
        return percentiles(times[1:])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def time_dicom(runs: int) -> dict[str, float]:
    port, pacs_port = free_port(), free_port()
    arrived: queue.Queue = queue.Queue()
    pacs = AE(ae_title="PACS")
    pacs.add_supported_context(SR)
    server = pacs.start_server(("127.0.0.1", pacs_port), block=False, evt_handlers=[
        (evt.EVT_C_STORE, lambda event: (arrived.put(time.perf_counter()), 0)[1])])
    proc = subprocess.Popen([sys.executable, "-m", "edgeld", "serve", "dicom", *MODEL, "--port",
                             str(port), "--store-to", f"127.0.0.1:{pacs_port}:PACS"],
                            stderr=subprocess.DEVNULL)
    film = np.asarray(Image.open(FILM).convert("L"))
    scu = AE(ae_title="DEVICE")
    scu.add_requested_context(DX)
    try:
        while not (assoc := scu.associate("127.0.0.1", port, ae_title="EDGELD")).is_established:
            time.sleep(0.3)
        assoc.release()
        times = []
        for i in range(runs + 1):
            ds = make_dx(film)
            t = time.perf_counter()
            assoc = scu.associate("127.0.0.1", port, ae_title="EDGELD")
            assert assoc.send_c_store(ds).Status == 0
            assoc.release()
            times.append(arrived.get(timeout=60) - t)
        return percentiles(times[1:])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        server.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "serve" / "results.json"))
    args = parser.parse_args()
    results = {"model": " ".join(MODEL), "film": FILM.name, "runs": args.runs,
               "direct_api_ms": time_direct(args.runs), "http_round_trip_ms": time_http(args.runs),
               "dicom_round_trip_ms": time_dicom(args.runs)}
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
