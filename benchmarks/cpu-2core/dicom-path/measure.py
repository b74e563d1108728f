"""A 12-bit DICOM film to landmarks (issue 12, item 2: 16-bit and DICOM paths without float copies).

The demo film is written as a 12-bit MONOCHROME2 DICOM with a rescale and a window (the tags an
X-ray device sets), then timed step by step, all steps interleaved round by round so drift hits
each alike: reading the file to display pixels (`read_dicom`), letterboxing those pixels to the
model input, and the whole `detect` of the ONNX student (alone, and with the refiner). Batch 1,
one process; p50 of the pooled runs and the spread of the per-round medians.

    taskset -c 0,1 python benchmarks/cpu-2core/dicom-path/measure.py --student out/student.int8-cpu.onnx \\
        --refiner out/refiner.int8-cpu.onnx [--runs 20] [--rounds 5] [--json OUT.json]

Run it at two commits to compare them; pin it to cores on a quiet machine.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from edgeld.data import load_grayscale
from edgeld.data.dicom import read_dicom
from edgeld.load import open_detector

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "edgeld" / "samples" / "isbi2015-demo" / "images" / "151.jpg"


def write_film(path: Path, image8: np.ndarray) -> None:
    """The 8-bit film as 12-bit stored values (with seeded sub-level noise), slope 1, intercept
    -1024, window 1024 +- 2048: every pixel goes through modality and VOI transforms."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    rng = np.random.default_rng(0)
    stored = np.clip(image8.astype(np.int32) * 16 + rng.integers(0, 16, image8.shape), 0, 4095)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.WindowCenter, ds.WindowWidth = 1024, 4096
    ds.PixelSpacing = [0.1, 0.1]
    ds.PixelData = stored.astype(np.uint16).tobytes()
    pydicom.dcmwrite(path, ds, enforce_file_format=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--student", default=str(ROOT / "out" / "student.int8-cpu.onnx"))
    parser.add_argument("--refiner", default=str(ROOT / "out" / "refiner.int8-cpu.onnx"))
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        film = Path(tmp) / "film.dcm"
        write_film(film, load_grayscale(SAMPLE))
        pixels = read_dicom(film).pixels
        student = open_detector(args.student, threads=2)
        cascade = open_detector(args.student, threads=2, refiner=args.refiner)
        io = student.io
        steps = {
            "read_dicom (file -> display pixels)": lambda: read_dicom(film),
            "letterbox (display pixels -> model input)": lambda: student.preprocess(pixels),
            "student detect (display pixels -> mm)": lambda: student.detect(pixels, 0.1),
            "cascade detect (display pixels -> mm)": lambda: cascade.detect(pixels, 0.1),
            "file -> mm, cascade": lambda: cascade.detect(read_dicom(film).pixels, 0.1),
        }
        for fn in steps.values():  # warm-up
            for _ in range(3):
                fn()
        rounds: dict[str, list[list[float]]] = {k: [] for k in steps}
        for _ in range(args.rounds):
            for name, fn in steps.items():
                times = []
                for _ in range(args.runs):
                    t0 = time.perf_counter()
                    fn()
                    times.append((time.perf_counter() - t0) * 1e3)
                rounds[name].append(times)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    print(f"{platform.processor() or platform.machine()}, commit {commit}, display pixels "
          f"{pixels.dtype} {pixels.shape}, model input {io.input_height}x{io.input_width}")
    rows = {}
    for name, per_round in rounds.items():
        medians = [float(np.median(r)) for r in per_round]
        p50 = float(np.median(np.concatenate(per_round)))
        spread = (max(medians) - min(medians)) / p50 * 100
        rows[name] = {"p50_ms": round(p50, 2), "round_spread_pct": round(spread, 1)}
        print(f"  {name:<44} p50 {p50:7.2f} ms   spread of round medians {spread:4.1f}%")
    if args.json:
        Path(args.json).write_text(json.dumps({"commit": commit, "pixels_dtype": str(pixels.dtype),
                                               "runs": args.runs, "rounds": args.rounds,
                                               "steps": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
