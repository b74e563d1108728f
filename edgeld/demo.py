"""`edgeld demo`: the whole path on the bundled student and bundled sample X-rays."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from edgeld.bench.harness import benchmark_detector
from edgeld.data import BUNDLED_SAMPLES, load_grayscale, open_dataset
from edgeld.evaluate import evaluate
from edgeld.load import open_detector
from edgeld.overlay import save_overlay

SAMPLES = BUNDLED_SAMPLES
MODEL = "isbi2015-student"
REFINERS = ("isbi2015-refiner",)  # the shipped cascade: student, then the fine refiner


def run_demo(out_dir: Path, echo: Callable[[str], None] = print) -> list[dict]:
    """Detect, export to ONNX, evaluate torch and ONNX Runtime (alone and as a cascade with the
    refiner), time each; returns the table rows."""
    from edgeld.export.onnx import export_onnx

    dataset = open_dataset(SAMPLES)
    samples = dataset.split("demo")
    echo(f"{len(samples)} sample X-rays ({dataset.name}, test1 images, senior annotation) "
         f"from {SAMPLES}")
    onnx_path = out_dir / f"{MODEL}.onnx"
    refiner_paths = [str(out_dir / f"{name}.onnx") for name in REFINERS]
    echo(f"exporting {MODEL} and its refiners to {out_dir} (ONNX Runtime checked against torch) ...")
    export_onnx(MODEL, onnx_path)
    for name, path in zip(REFINERS, refiner_paths):
        export_onnx(name, path)

    rows = []
    for label, ref, refiner in (("torch", MODEL, None), ("onnxruntime", str(onnx_path), None),
                                ("ort cascade", str(onnx_path), refiner_paths)):
        detector = open_detector(ref, refiner=refiner)
        acc = evaluate(detector, dataset, "demo", progress=False)
        image = load_grayscale(samples[0].path)
        timing = benchmark_detector(detector, ref, 1, image, warmup_s=0.5, min_seconds=1.0,
                                    min_runs=10)
        rows.append({"backend": label, "mre_mm": acc["mre_mm"], "sdr_2mm": acc["sdr_percent"]["2.0"],
                     "model_p50_ms": timing["latency_ms"]["p50"],
                     "end_to_end_p50_ms": timing["end_to_end_ms"]["p50"]})
        if refiner:
            for sample in samples:
                img = load_grayscale(sample.path)
                det = detector.detect(img, sample.spacing_mm)
                save_overlay(img, det, out_dir / "overlays" / f"{Path(sample.image_id).stem}.png",
                             reference_px=sample.reference("senior"))

    echo("")
    echo(f"{'backend':<12} {'MRE mm':>7} {'SDR@2mm':>8} {'model p50 ms':>13} {'end-to-end p50 ms':>18}")
    for r in rows:
        echo(f"{r['backend']:<12} {r['mre_mm']:7.3f} {r['sdr_2mm']:7.1f}% {r['model_p50_ms']:13.2f} "
             f"{r['end_to_end_p50_ms']:18.2f}")
    echo("")
    echo("ort cascade = the shipped cascade: the student, then the refiner on a 0.2 mm per pixel "
         "patch around each landmark")
    echo(f"overlays of the cascade (circles: prediction, crosses: senior annotation): "
         f"{out_dir / 'overlays'}")
    return rows
