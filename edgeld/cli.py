"""The `edgeld` command line: thin click commands over the modules; heavy imports inside each."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from edgeld import __version__, options
from edgeld.core.errors import UserError
from edgeld.model_ref import ModelRef, resolve_model

if TYPE_CHECKING:
    from edgeld.data.datasets import LandmarkDataset


# optional dependencies (setup.py extras) that commands import lazily -> the extra that brings them
OPTIONAL_EXTRAS = {"torch": "torch", "onnxscript": "torch", "onnxsim": "torch",
                   "matplotlib": "torch", "pydicom": "dicom", "tensorrt": "trt", "cuda": "trt",
                   "pynetdicom": "dicom", "highdicom": "dicom", "fastapi": "serve",
                   "starlette": "serve", "uvicorn": "serve", "multipart": "serve",
                   "python_multipart": "serve"}


class EdgeldGroup(click.Group):
    """Turns UserError and click's usage errors into one line on stderr and exit code 2 (no
    traceback): the contract promises scripts one line, and click's own format takes three."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except click.UsageError as exc:
            _usage_error(exc, ctx)
        except ModuleNotFoundError as exc:  # an optional dependency this command needs
            extra = OPTIONAL_EXTRAS.get((exc.name or "").split(".")[0])
            if extra is None:
                raise
            click.echo(f"error: {exc.name} is not installed: pip install 'edgeld[{extra}]'", err=True)
            sys.exit(2)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:  # the group's own options (`edgeld --bogus`) fail here, outside invoke
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            _usage_error(exc, ctx)


def _usage_error(exc: click.UsageError, ctx: click.Context):
    if isinstance(exc, getattr(click.exceptions, "NoArgsIsHelpError", ())):
        raise exc  # a bare `edgeld` prints its help: not an error message
    path = exc.ctx.command_path if exc.ctx else ctx.command_path
    click.echo(f"error: {exc.format_message().rstrip('.')} (see '{path} --help')", err=True)
    sys.exit(2)


@click.group(cls=EdgeldGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgeld")
def cli() -> None:
    """Anatomical landmark detection on X-rays, distilled for edge hardware."""


def _write_json(path: str | None, data) -> None:
    if path:
        from edgeld.core.files import atomic_write_json

        atomic_write_json(path, data)


def _resolve(model: str, refiners: tuple[str, ...] = ()) -> tuple[ModelRef, list[ModelRef]]:
    """MODEL and its --refiner stages, resolved once here and passed on as ModelRefs."""
    return resolve_model(model), [resolve_model(r) for r in refiners]


def _check_outputs(files: tuple[str | None, ...] = (), folders: tuple[str | None, ...] = ()) -> None:
    """Refuse an output location that cannot be written before the work, not after it."""
    from edgeld.core.files import check_output_folder

    for path in filter(None, files):
        if Path(path).is_dir():
            raise UserError(f"cannot write {path}: it is a folder; give a file path")
        check_output_folder(Path(path).parent)
    for folder in filter(None, folders):
        check_output_folder(folder)


@cli.command()
@click.option("--data", "data_dir", required=True, help="Dataset folder (either layout).")
@click.option("--role", type=click.Choice(options.ROLES),
              default="student",
              show_default=True, help="refiner: a cascade's patch-refinement stage (needs --stage1).")
@click.option("--stage1", default=None, help="The first stage a refiner is selected with.")
@click.option("--patch-factor", type=click.IntRange(1), default=None,
              help="Refiner: source pixels per patch pixel (ISBI: 2 = 0.2 mm, the default; 4 = 0.4 mm).")
@click.option("--teacher", default=None, help="Teacher for distillation (built-in name or checkpoint).")
@click.option("--kd", type=click.Choice(options.KD_METHODS),
              default="none", show_default=True,
              help="Distillation: fsf = FSF-LD feature sharing; output, fitnet, at, cwd = baselines.")
@click.option("--out", "out_dir", required=True, help="Run folder for checkpoints and logs.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --out.")
@click.option("--epochs", type=click.IntRange(1), default=None, help="Default: the recipe's 100.")
@click.option("--batch-size", type=click.IntRange(1), default=None)
@click.option("--seed", type=int, default=None)
@click.option("--val-count", type=click.IntRange(0), default=None,
              help="Training images held out for model selection (default 20); 0 trains on all "
                   "and keeps the last epoch (fix --epochs on a validated run first).")
@click.option("--input-size", default=None, metavar="HxW", help="Model input, e.g. 384x320.")
@click.option("--threads", type=click.IntRange(0), default=0, help="torch threads (0: default).")
@click.option("--rotate", type=click.FloatRange(0), default=None, metavar="DEG",
              help="Augmentation: rotation up to ±DEG degrees (default 8; a refiner's patches: 0).")
@click.option("--scale-range", type=click.FloatRange(0), default=None, metavar="S",
              help="Augmentation: isotropic scale exp(±S) (default 0.08; a refiner's patches: 0).")
@click.option("--shift", type=click.FloatRange(0), default=None, metavar="F",
              help="Augmentation: translation up to ±F of the input's sides (default 0.04).")
@click.option("--elastic", type=click.FloatRange(0), default=None, metavar="PX",
              help="Augmentation: elastic deformation, 5x5 control grid, up to ±PX input pixels "
                   "(default 0: off).")
@click.option("--intensity", type=click.FloatRange(0), default=None, metavar="K",
              help="Augmentation: scales the exposure ranges (default 1).")
@click.option("--aux/--no-aux", default=None,
              help="Multi-task pretraining (offset regression + masked reconstruction); "
                   "default: on for the teacher, off for the student.")
@click.option("--reference", default=None, metavar="NAME",
              help="Annotation to train toward and select on: an annotator's name, or mean "
                   "(senior and junior averaged). Default: the dataset's (ISBI: senior).")
@click.option("--device", type=click.Choice(options.TRAIN_DEVICES), default="auto",
              show_default=True, help="Where to train: auto takes a CUDA GPU when torch sees one.")
def train(data_dir, role, stage1, patch_factor, teacher, kd, out_dir, resume, epochs, batch_size, seed, val_count, input_size,
          threads, rotate, scale_range, shift, elastic, intensity, aux, reference, device) -> None:
    """Train a heatmap model on the train split, selecting on a held-out validation part of it."""
    from dataclasses import replace

    from edgeld.config import InputSpec, TrainSpec
    from edgeld.train.trainer import AUX_WEIGHTS, train as run_training

    overrides = {k: v for k, v in dict(epochs=epochs, batch_size=batch_size, seed=seed,
                                       val_count=val_count, threads=threads).items() if v is not None}
    augment = {k: v for k, v in dict(rotate_deg=rotate, scale_range=scale_range, shift_fraction=shift,
                                     elastic_px=elastic, intensity_strength=intensity).items()
               if v is not None}
    if aux if aux is not None else role == "teacher":
        overrides.update(offset_weight=AUX_WEIGHTS["offset"],
                         reconstruction_weight=AUX_WEIGHTS["reconstruction"])
    if (role == "refiner") != (stage1 is not None):
        raise UserError("--role refiner and --stage1 MODEL go together")
    if patch_factor is not None and role != "refiner":
        raise UserError("--patch-factor is a refiner's option: use it with --role refiner")
    if role == "refiner":
        from edgeld.train.refiner import REFINER_RECIPE, train_refiner

        if kd != "none" or teacher or aux or input_size or set(augment) - {"rotate_deg", "scale_range"}:
            raise UserError("a refiner takes --data, --stage1, --out, --resume, --device, --reference, the "
                            "optimizer options and --rotate / --scale-range (per patch) only")
        from edgeld.runtime.patches import PatchSpec

        patch = PatchSpec() if patch_factor is None else PatchSpec(factor=patch_factor)
        if augment.get("scale_range", 0.0) > 0.3:
            raise UserError("a refiner's --scale-range is at most 0.3")
        summary = train_refiner(data_dir, out_dir, stage1,
                                replace(REFINER_RECIPE, **overrides, **augment), patch,
                                resume=resume, device=device, reference=reference)
        if summary["rank"] != 0:  # under torchrun, rank 0 reports
            return
        click.echo(_trained(summary, "cascade validation"))
        return
    input_spec = InputSpec()
    if input_size:
        h, w = _parse_size(input_size)
        input_spec = replace(input_spec, height=h, width=w)
    summary = run_training(data_dir, out_dir, role=role, spec=replace(TrainSpec(), **overrides, **augment),
                           input_spec=input_spec, resume=resume, kd=kd, teacher=teacher,
                           device=device, reference=reference)
    if summary["rank"] != 0:  # under torchrun, rank 0 reports
        return
    click.echo(_trained(summary, "validation"))


def _trained(summary: dict, what: str) -> str:
    """The line a finished training run ends with: its chosen epoch and where it went."""
    best = summary["best"]
    if "val_mre_mm" not in best:  # --val-count 0
        return f"last epoch {best['epoch']} (no validation images)  ->  {summary['checkpoint']}"
    sdr = f", SDR@2mm {best['val_sdr_2mm']:.1f}%" if what == "validation" else ""
    return f"best epoch {best['epoch']}: {what} MRE {best['val_mre_mm']:.3f} mm{sdr}  ->  {summary['checkpoint']}"


def _parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"--input-size must look like 384x320 (got {text!r})") from None
    if h % 32 or w % 32 or h <= 0 or w <= 0:
        raise UserError(f"--input-size sides must be positive multiples of 32 (got {text})")
    return h, w


def _note_other_reference(dataset: LandmarkDataset, ref: ModelRef, refiners: list[ModelRef],
                          reference: str | None) -> None:
    """Say so when the dataset's default annotation is not the one the chain was trained toward:
    a mean-trained model scored against the senior reads 0.5 mm worse than against its own."""
    from edgeld.evaluate import trained_reference

    trained = trained_reference(dataset, ref, refiners[-1] if refiners else None)
    if reference is not None or trained == dataset.default_reference:
        return
    fix = (f"add --reference {trained} to score it against its own" if trained in options.REFERENCES
           else "its own annotation is not one evaluate scores against")
    click.echo(f"note: the model was trained toward the {trained} annotation and is scored against "
               f"{dataset.default_reference}, the dataset's default; {fix}", err=True)


@cli.command()
@click.argument("model")
@click.option("--data", "data_dir", required=True)
@click.option("--split", required=True)
@click.option("--reference", type=click.Choice(options.REFERENCES), default=None,
              help="Annotation to compare with (default: the dataset's, senior for ISBI).")
@click.option("--json", "json_path", default=None, help="Write the results as JSON here.")
@click.option("--baseline", is_flag=True, help="Also report the mean-shape baseline.")
@click.option("--refiner", multiple=True,
              help="A cascade's refinement stage to run after MODEL (repeat: coarse to fine).")
@click.option("--decode", type=click.Choice(options.DECODE_MODES), default="full", show_default=True,
              help="How JPEG films are decoded: in full (the published figures), or reduced as far "
                   "as the model chain needs, as predict does.")
def evaluate(model, data_dir, split, reference, json_path, baseline, refiner, decode) -> None:
    """MRE and SDR of MODEL on a dataset split."""
    from edgeld.data import open_dataset
    from edgeld.evaluate import evaluate as run_eval, mean_shape_baseline
    from edgeld.load import open_detector

    _check_outputs(files=(json_path,))
    dataset = open_dataset(data_dir)
    dataset.split(split)
    ref, refiners = _resolve(model, refiner)
    _note_other_reference(dataset, ref, refiners, reference)
    detector = open_detector(ref, refiner=refiners)
    result = {"model": " + ".join((model, *refiner)), "data": str(data_dir),
              "decode": decode, **run_eval(detector, dataset, split, reference,
                                           reduced=decode == "reduced")}
    rows = [result]
    if baseline:
        result["baseline"] = mean_shape_baseline(dataset, split, reference)
        rows.append(result["baseline"])
    _write_json(json_path, result)
    click.echo(f"{split} ({result['n_images']} images, reference {result['reference']}):")
    for r in rows:
        sdr = "  ".join(f"SDR@{k}mm {v:5.1f}%" for k, v in r["sdr_percent"].items())
        click.echo(f"  {r['model']:<28} MRE {r['mre_mm']:6.3f} ± {r['mre_std_mm']:.3f} mm  {sdr}")
    worst = sorted(result["per_image"], key=lambda r: -r["mre_mm"])[:3]
    click.echo("  worst images: " + ", ".join(f"{r['image']} {r['mre_mm']:.2f} mm" for r in worst))
    unusable = [r for r in result["per_image"] if not r["usable"]]
    if unusable:
        click.echo(f"  {len(unusable)} images judged unusable (scored with the landmarks found "
                   "anyway): " + "; ".join(f"{r['image']}: {r['reason']}" for r in unusable[:5]))
    flags = result.get("uncertainty")
    if flags and flags["far_off_flagged_share"] is not None:
        click.echo(f"  uncertain flags: {100 * flags['flagged_share']:.1f}% of landmarks, holding "
                   f"{100 * flags['far_off_flagged_share']:.1f}% of the {flags['far_off']} more than "
                   f"{flags['threshold_mm']:g} mm off; unflagged MRE {flags['mre_unflagged_mm']:.3f} mm")


@cli.command()
@click.argument("model")
@click.option("--to", "target_format", type=click.Choice(options.EXPORT_FORMATS),
              required=True, help="onnx: FP32 ONNX; fp16: FP16 ONNX (float32 I/O); int8: Q/DQ ONNX "
                                  "from calibration data; engine: TensorRT engine from an exported ONNX.")
@click.option("--out", required=True, help="Output path, e.g. student.onnx; the manifest goes to OUT.json.")
@click.option("--calibration", default=None, help="Calibration set folder (INT8), from `edgeld calibrate`.")
@click.option("--target", type=click.Choice(options.INT8_TARGETS), default="tensorrt", show_default=True,
              help="INT8 layout: tensorrt = symmetric signed INT8, float biases (portable); "
                   "cpu = unsigned activations with zero points (fastest on x86 ONNX Runtime).")
@click.option("--method", type=click.Choice(options.CALIBRATION_METHODS), default="minmax",
              show_default=True, help="INT8 activation-range calibration.")
@click.option("--max-mre-increase", type=float, default=None,
              help="Accuracy gate in mm against FP32 (default 0.05 for int8, 0.01 for fp16).")
@click.option("--data", "data_dir", default=None,
              help="Dataset for the accuracy gate (default: the calibration set's dataset).")
@click.option("--split", default=None,
              help="Gate split (default: the model's own validation images, held out from train).")
@click.option("--precision", type=click.Choice(options.PRECISIONS), default=None,
              help="Engine precision (--to engine); must match what the ONNX holds on TensorRT 11.")
@click.option("--batch-sizes", default="1,1,8", show_default=True, metavar="MIN,OPT,MAX",
              help="Engine optimization profile over batch sizes.")
@click.option("--timing-cache", default=None, help="TensorRT timing cache file (read and updated).")
@click.option("--legacy-calibration", default=None,
              help="TensorRT 10 only: INT8 through the legacy entropy calibrator and this calibration set.")
@click.option("--stage1", default=None, metavar="MODEL",
              help="Refiners (--to int8|fp16): the first stage the accuracy gate runs before MODEL, "
                   "in FP32 [default: the calibration set's, else isbi2015-student].")
def export(model, target_format, out, calibration, target, method, max_mre_increase, data_dir,
           split, precision, batch_sizes, timing_cache, legacy_calibration, stage1) -> None:
    """Export MODEL to a deployable artifact plus manifest (PATH.json)."""
    _check_outputs(files=(out,))
    engine_only = {"--precision": precision, "--timing-cache": timing_cache,
                   "--legacy-calibration": legacy_calibration}
    if stage1 is not None and target_format not in ("int8", "fp16"):
        raise UserError("--stage1 applies to --to int8|fp16 of a refiner only")
    if target_format != "engine":
        for name, value in engine_only.items():
            if value is not None:
                raise UserError(f"{name} applies to --to engine only")
    ref = resolve_model(model)
    if target_format == "engine":
        if ref.kind != "onnx":
            raise UserError("--to engine builds from an exported .onnx (with its manifest); "
                            "run `edgeld export MODEL --to onnx|fp16|int8` first")
        from edgeld.export.tensorrt import build_engine

        try:
            sizes = tuple(int(v) for v in batch_sizes.split(","))
        except ValueError:
            raise UserError(f"--batch-sizes must look like 1,1,8 (got {batch_sizes!r})") from None
        manifest = build_engine(ref.path, out, precision or "fp32", sizes, timing_cache,
                                legacy_calibration)
        built = manifest.section("tensorrt")
        click.echo(f"wrote {out} and {out}.json (TensorRT {built['version']}, "
                   f"{built['gpu']}, {manifest.artifact.precision})")
        return

    if target_format == "onnx":
        from edgeld.export.onnx import export_onnx

        if not ref.is_checkpoint:
            raise UserError(f"--to onnx needs a built-in model or a .safetensors checkpoint, not {model}")
        for name, value in (("--calibration", calibration), ("--max-mre-increase", max_mre_increase)):
            if value is not None:
                raise UserError(f"{name} does not apply to --to onnx (FP32 is checked by parity)")
        manifest = export_onnx(ref, out)
        parity = manifest.section("parity")
        click.echo(f"wrote {out} ({manifest.artifact.bytes / 1e6:.2f} MB) and {out}.json; "
                   f"ONNX Runtime vs torch: max logit diff {parity['max_abs_logit_diff']:.1e}, "
                   f"max landmark diff {parity['max_point_diff_px']:.1e} px")
        return
    from edgeld.export.lowered import export_lowered

    if target_format == "fp16" and (target != "tensorrt" or method != "minmax"):
        raise UserError("--target and --method apply to --to int8 only")
    manifest = export_lowered(ref, out, target_format, calibration, target, method,
                              max_mre_increase, data_dir, split, echo=click.echo,
                              stage1=resolve_model(stage1) if stage1 else None)
    gate = manifest.section("gate")
    click.echo(f"wrote {out} ({manifest.artifact.bytes / 1e6:.2f} MB) and {out}.json; "
               f"MRE on {gate['split']}: {gate['fp32_mre_mm']:.3f} -> {gate['mre_mm']:.3f} mm "
               f"(limit +{gate['max_mre_increase_mm']} mm); "
               f"kept in float32: {', '.join(manifest.section('lowering')['kept_float32_layers']) or 'none'}")


@cli.command()
@click.option("--data", "data_dir", required=True)
@click.option("--split", required=True)
@click.option("--count", type=click.IntRange(1), required=True)
@click.option("--out", "out_dir", required=True, help="Folder, e.g. calibration/isbi2015-train-64.")
@click.option("--for", "for_model", default=None, metavar="MODEL",
              help="The model the set is for: whole letterboxed images for a first stage, patches "
                   "around the first stage's landmarks for a refiner [default: isbi2015-student].")
@click.option("--model", "old_model", default=None, hidden=True)  # the earlier name of --for
@click.option("--stage1", default=None, metavar="MODEL",
              help="Refiners only: the first stage whose landmarks the patches are cut around "
                   "[default: isbi2015-student].")
@click.option("--method", type=click.Choice(options.SELECTION_METHODS), default="diverse",
              show_default=True, help="How images are chosen.")
@click.option("--seed", type=int, default=0, show_default=True)
def calibrate(data_dir, split, count, out_dir, for_model, old_model, stage1, method, seed) -> None:
    """Write an INT8 calibration set: a manifest plus preprocessed tensors."""
    from edgeld.export.calibration import build_calibration

    if for_model and old_model:
        raise UserError("--model is the earlier name of --for; give --for MODEL only")
    _check_outputs(folders=(out_dir,))
    io = resolve_model(for_model or old_model or "isbi2015-student").io
    cal = build_calibration(data_dir, split, count, out_dir, io, method, seed,
                            stage1=resolve_model(stage1) if stage1 else None)
    if cal.stage1:
        click.echo(f"wrote {out_dir}/manifest.json and tensors.npy: {len(cal.tensors)} patches "
                   f"around {cal.stage1['name']}'s landmarks on {len(cal.manifest['images'])} "
                   f"images from {split} ({method})")
        return
    click.echo(f"wrote {out_dir}/manifest.json and tensors.npy: {len(cal.tensors)} images from "
               f"{split} ({method})")


@cli.command()
@click.argument("model")
@click.argument("images", nargs=-1, required=True)
@click.option("--spacing", default=None, metavar="MM|ROWxCOL",
              help="Pixel spacing in mm, e.g. 0.1 or 0.1x0.12 (row x column); overrides a DICOM "
                   "file's own. Without either, landmarks are in pixels only.")
@click.option("--json", "json_path", default=None,
              help="Write the records (the JSON Schema in edgeld/schemas/) as a JSON list here.")
@click.option("--overlay", "overlay_dir", default=None, help="Write each image with its landmarks here.")
@click.option("--refiner", multiple=True,
              help="A cascade's refinement stage to run after MODEL (repeat: coarse to fine).")
@click.option("--keep-going", is_flag=True,
              help="Go on past unreadable or unusable images: write the others' records (an "
                   "unusable image's record says why and has no landmarks), list the failures on "
                   "stderr, exit 2.")
@click.option("--sr", "sr_dir", default=None,
              help="DICOM inputs only: write each one's DICOM Structured Report (TID 1500, one "
                   "point per landmark) here, as `edgeld serve dicom` does.")
@click.option("--decode", type=click.Choice(options.DECODE_MODES), default="reduced",
              show_default=True,
              help="reduced: decode a JPEG only at the size the model chain needs (1/2 for the "
                   "shipped cascade, 1/4 for the student alone on ISBI films); full: every pixel. "
                   "Positions are in the file's own pixels either way.")
def predict(model, images, spacing, json_path, overlay_dir, refiner, keep_going, sr_dir,
            decode) -> None:
    """Landmarks of one or more X-ray images (JPEG, PNG, BMP, TIFF or DICOM). An image the model
    cannot measure (blank, not a film like its training films, too small) gets no landmarks: one
    line on stderr saying why, and exit code 2."""
    from edgeld.data.images import load_grayscale
    from edgeld.detect_file import detect_films
    from edgeld.load import open_detector
    from edgeld.overlay import save_overlay

    user_spacing = _parse_spacing(spacing) if spacing is not None else None
    _check_outputs(files=(json_path,), folders=(overlay_dir, sr_dir))
    images = _expand_folders(images)
    _check_sr_inputs(images, sr_dir)
    ref, refiners = _resolve(model, refiner)
    detector = open_detector(ref, refiner=refiners)  # before reading: it says how far to reduce
    loaded, failures = _load_images(images, keep_going, detector, decode == "reduced")
    results = []
    for path, film in loaded:
        used, source = _spacing_for(path, user_spacing, film.spacing_mm, film.spacing_source)
        det = detect_films(detector, [film], [used])[0]
        if not det.quality.usable:
            if not keep_going:  # before any output is written: nothing half done
                raise UserError(f"{path}: not usable: {det.quality.reason}")
            failures.append(f"{path}: not usable: {det.quality.reason}")
        results.append((path, film, det, used, source))
    records = []
    for path, film, det, used, source in results:
        record = det.to_dict(str(path))
        # x_mm/y_mm stay in each landmark (null without a spacing) so the JSON keeps one shape
        record.update(spacing_source=source, units="mm" if used is not None else "px")
        records.append(record)
        if overlay_dir and det.quality.usable:
            image = film.image if film.factor == 1 else load_grayscale(path)  # drawn in full
            save_overlay(image, det, Path(overlay_dir) / f"{Path(path).stem}.png")
        if sr_dir:
            from edgeld.serve.sr import write_offline_sr

            write_offline_sr(path, det, [ref, *refiners], sr_dir)
        if det.quality.usable:
            click.echo(f"{path}: {len(det.names)} landmarks, mean confidence "
                       f"{det.confidence.mean():.2f}" + _turned(det.orientation))
            click.echo(_landmark_table(record))
        if det.estimated_spacing_mm is not None:
            click.echo(f"note: {path}: no pixel spacing, and its anatomy measures about "
                       f"{det.estimated_spacing_mm:.3g} mm pixels, far from the refiner's training "
                       "films: patches were cut at that scale (state it with --spacing MM)", err=True)
        if det.anatomy_spacing_mm is not None:
            row, col = det.spacing_mm
            fix = "check --spacing" if source == "--spacing" else f"check the file's {source} or give --spacing MM"
            click.echo(f"warning: {path}: its pixel spacing {row:g}x{col:g} mm ({source}) contradicts "
                       f"its anatomy, which measures about {det.anatomy_spacing_mm:.3g} mm pixels; "
                       f"its mm positions use the stated spacing: {fix}", err=True)
    n_px_only = sum(used is None for _, _, det, used, _ in results if det.quality.usable)
    if n_px_only:
        which = "" if n_px_only == len(results) else f" for {n_px_only} of {len(results)} images"
        click.echo(f"note: no pixel spacing{which} (none in the file, no --spacing), so positions "
                   "are in pixels only (use --spacing MM)", err=True)
    _write_json(json_path, records)
    if overlay_dir:
        click.echo(f"overlays in {overlay_dir}")
    if failures:
        for line in failures:
            click.echo(f"error: {line}", err=True)
        click.echo(f"error: {len(failures)} of {len(images)} images failed; the others' records "
                   "were written", err=True)
        sys.exit(2)


def _check_sr_inputs(images: tuple[str, ...], sr_dir: str | None) -> None:
    """--sr references the source DICOM image: refuse other inputs before any work."""
    from edgeld.data.dicom import is_dicom

    others = [p for p in images if sr_dir and not is_dicom(p)]
    if others:
        raise UserError(f"--sr needs DICOM inputs (an SR references its source image); "
                        f"{others[0]} is not DICOM")


def _landmark_table(record: dict) -> str:
    """The record's landmarks as an aligned table: name, x, y (mm, else px), confidence, and
    "uncertain" beside those the model's fitted score flags as likely more than 4 mm off."""
    unit = record["units"]
    lines = [f"  {'landmark':<26} {'x (' + unit + ')':>10} {'y (' + unit + ')':>10} {'conf':>6}"]
    for lm in record["landmarks"]:
        x, y = (lm["x_mm"], lm["y_mm"]) if unit == "mm" else (lm["x_px"], lm["y_px"])
        flag = "  uncertain" if lm.get("uncertain") else ""
        lines.append(f"  {lm['name']:<26} {x:>10.2f} {y:>10.2f} {lm['confidence']:>6.2f}{flag}")
    return "\n".join(lines)


def _expand_folders(images: tuple[str, ...]) -> tuple[str, ...]:
    """Image arguments with each folder replaced by the image files in it (sorted)."""
    from edgeld.data.images import IMAGE_SUFFIXES

    out: list[str] = []
    for arg in images:
        path = Path(arg)
        if path.is_dir():
            found = sorted(str(p) for p in path.iterdir()
                           if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise UserError(f"{path} is a folder with no image files in it "
                                f"({', '.join(IMAGE_SUFFIXES)})")
            out += found
        else:
            out.append(arg)
    return tuple(out)


def _turned(orientation: str) -> str:
    return "" if orientation == "upright" else f" (film {orientation}; put upright and measured)"


def _load_images(images: tuple[str, ...], keep_going: bool, detector, reduced: bool
                 ) -> tuple[list, list[str]]:
    """Each readable image (a ReducedFilm: JPEGs decoded as far reduced as the detector allows
    when `reduced`); with keep_going, unreadable ones become failure lines instead of ending the
    command."""
    from edgeld.detect_file import read_film

    loaded, failures = [], []
    for path in images:
        try:
            loaded.append((path, read_film(detector, path, reduced)))
        except UserError as exc:
            if not keep_going:
                raise
            failures.append(str(exc))
    return loaded, failures


def _spacing_for(path, user_spacing, file_spacing, file_source):
    """The spacing to use and its source: the user's --spacing, then the file's own (DICOM
    tags); never a guess. A note when the two disagree."""
    if user_spacing is None:
        return file_spacing, file_source
    if file_spacing is not None and not _same_spacing(file_spacing, user_spacing):
        click.echo(f"note: {path}: --spacing {user_spacing[0]:g}x{user_spacing[1]:g} mm "
                   f"overrides the file's {file_source} {file_spacing[0]:g}x"
                   f"{file_spacing[1]:g} mm", err=True)
    return user_spacing, "--spacing"


def _parse_spacing(text: str) -> tuple[float, float]:
    """--spacing as a (row, column) pair in mm: "0.1" (square pixels) or "0.1x0.12"."""
    from edgeld.core.spacing import parse_spacing

    return parse_spacing(text, "--spacing")


def _same_spacing(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return all(abs(x - y) <= 1e-6 * max(abs(x), abs(y)) for x, y in zip(a, b))


@cli.command()
@click.argument("models", nargs=-1, required=True)
@click.option("--data", "data_dir", default=None, help="Also measure accuracy on this dataset.")
@click.option("--split", default=None)
@click.option("--batch", "batches", type=click.IntRange(1), multiple=True, default=(1,),
              show_default=True)
@click.option("--seconds", type=click.FloatRange(0.1), default=3.0, show_default=True,
              help="Minimum timed seconds per measurement (after 1 s of warm-up).")
@click.option("--threads", type=click.IntRange(0), default=0, help="Intra-op threads (0: all).")
@click.option("--refiner", multiple=True,
              help="A cascade's refinement stage, run after every MODEL (timed with it; repeatable).")
@click.option("--backend", "backends", multiple=True,
              type=click.Choice(options.BACKENDS),
              help="Repeatable. torch-*: how checkpoints and built-in models run (default torch-cpu); "
                   "onnxruntime-*: which execution provider runs .onnx files (default: the best "
                   "available).")
@click.option("--min-runs", type=click.IntRange(1), default=50, show_default=True,
              help="Fewest timed runs per measurement (lower it for slow models).")
@click.option("--repeat", type=click.IntRange(1), default=1, show_default=True,
              help="Measure everything this many times, models interleaved, and report how far "
                   "the repeats' p50s spread.")
@click.option("--power", type=click.Choice(options.POWER_MODES), default="auto", show_default=True,
              help="Sample tegrastats during each timed phase (auto: on a Jetson with tegrastats) "
                   "and report input power above idle and energy per image.")
@click.option("--cpus", default=None,
              help="Pin the benchmark to these CPUs (e.g. 1 or 0,1 or 0-3; Linux) so timings do "
                   "not wander between cores; --threads then defaults to one per CPU.")
@click.option("--out", "out_dir", required=True)
def benchmark(models, data_dir, split, batches, seconds, threads, refiner, backends, min_runs, repeat,
              power, cpus, out_dir) -> None:
    """Latency (model-only and end-to-end) and, with --data, accuracy of each MODEL."""
    from edgeld.bench.run import check_data_split, run_benchmark

    check_data_split(data_dir, split)
    _check_outputs(folders=(out_dir,))
    command = "edgeld benchmark " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "edgeld benchmark"
    run_benchmark(models, out_dir, refiners=refiner, data_dir=data_dir, split=split, batches=batches,
                  seconds=seconds, threads=threads, backends=backends, min_runs=min_runs,
                  repeat=repeat, power=power, cpus=cpus, command=command, echo=click.echo)
    out = Path(out_dir)
    click.echo(f"wrote {out / 'results.json'} and {out / 'results.md'}")


@cli.command()
@click.argument("results", nargs=-1, required=True)
@click.option("--out", "out_dir", required=True)
@click.option("--latency-budget-ms", type=float, default=None,
              help="The headline ships the most accurate artifact whose latency p50 fits this.")
@click.option("--mre-budget-mm", type=float, default=None,
              help="The headline names the fastest artifact whose MRE fits this.")
@click.option("--devices", "devices_path", default=None,
              help="A JSON (or YAML) devices table of prices and power draws, your own figures "
                   "(example: benchmarks/devices.example.json): adds cost per image.")
@click.option("--device", default=None,
              help="Charge every row to this entry of --devices instead of matching the "
                   "device each record names.")
def report(results, out_dir, latency_budget_ms, mre_budget_mm, devices_path, device) -> None:
    """Render benchmark results (results.json files) as a markdown report with plots."""
    from edgeld.bench.report import load_records, render_report

    md = render_report(load_records(list(results)), out_dir, latency_budget_ms=latency_budget_ms,
                       mre_budget_mm=mre_budget_mm, devices_path=devices_path, device=device)
    click.echo(f"wrote {md} and its plots")


@cli.command()
@click.argument("model")
@click.option("--json", "json_path", default=None, help="Write the record as JSON here.")
def info(model, json_path) -> None:
    """Parameters, MACs, input size, landmarks and precision of MODEL."""
    from edgeld.info import model_info

    _check_outputs(files=(json_path,))
    data = model_info(resolve_model(model))
    _write_json(json_path, data)
    for key in ("name", "kind", "role", "params", "macs", "input_size", "precision", "decoding", "bytes"):
        value = data.get(key)
        if key == "macs" and value and data["role"] == "refiner":
            value = (f"{value:,} per patch, {data['macs_per_image'] / 1e9:.2f} GMACs per image "
                     f"({len(data['landmarks'])} patches)")
        elif key == "macs" and value:
            value = f"{value:,} ({value / 1e9:.2f} GMACs per image)"
        elif key == "params" and value:
            value = f"{value:,}"
        elif key == "precision" and data.get("storage_dtype", "float32") != "float32":
            value = f"{value} (weights stored as {data['storage_dtype']}, computed in float32)"
        click.echo(f"{key:>10}: {value}")
    click.echo(f"{'landmarks':>10}: {len(data['landmarks'])} ({', '.join(data['landmarks'])})")
    origin = {k: v for k, v in data.get("provenance", {}).items() if v not in (None, {}, [])}
    best = origin.pop("best_validation", None)
    if best and "val_mre_mm" in best:
        origin["best validation"] = f"MRE {best['val_mre_mm']:.3f} mm (epoch {best.get('epoch')})"
    elif best and "selection" in best:
        origin["kept"] = f"epoch {best.get('epoch')}, {best['selection']}"
    click.echo(f"{'origin':>10}: " + "; ".join(f"{k.replace('_', ' ')} {v}" for k, v in origin.items()))


@cli.group()
def orientation() -> None:
    """Which way films face: check images, or fit a model's upright-film reference."""


@orientation.command("check")
@click.argument("model")
@click.argument("images", nargs=-1, required=True, type=click.Path())
def orientation_check(model, images) -> None:
    """How each image is oriented relative to MODEL's training films."""
    from edgeld.data.images import load_grayscale
    from edgeld.load import open_detector

    detector = open_detector(model)
    films = [(path, load_grayscale(path)) for path in images]  # fail early on a bad file
    for path, film in films:
        check = detector.check_orientation(film)
        if check is None:
            raise UserError(f"{model} carries no usable orientation reference; fit one with "
                            f"`edgeld orientation fit {model} --data DIR --split train --out PATH`")
        click.echo(f"{path}: {check.orientation.describe()} (correlation {check.score:.2f})")


@orientation.command("fit")
@click.argument("model")
@click.option("--data", "data_dir", required=True, type=click.Path(), help="dataset folder")
@click.option("--split", default="train", show_default=True, help="the model's training split")
@click.option("--out", required=True, type=click.Path(), help="checkpoint to write (.safetensors)")
def orientation_fit(model, data_dir, split, out) -> None:
    """Copy checkpoint MODEL with an upright-film reference and usability thresholds fitted on a
    split's films (and MODEL's own validation films for its confidence)."""
    from edgeld.orientation import attach_to_checkpoint, fit_on_split

    ref = resolve_model(model)
    if not ref.is_checkpoint:
        raise UserError(f"{model} is an exported artifact: fit the checkpoint it came from, "
                        "then export again")
    _check_outputs(files=(out,))
    reference, quality = fit_on_split(ref, data_dir, split)
    attach_to_checkpoint(ref.path, out, reference, quality)
    verdict = "used" if reference.usable else "too weak to use: films are measured as given"
    click.echo(f"wrote {out}: orientation reference from {reference.fitted_on}, separation "
               f"{reference.separation:.3f} ({verdict}); usability thresholds: correlation >= "
               f"{quality.min_correlation:.2f}, mean confidence >= {quality.min_confidence:.2f}, "
               f"shorter side >= {quality.min_side_px} px, aspect <= {quality.max_aspect:g}")


def _fit_options(refiner_help: str):
    """The arguments every `... fit` command that writes into a checkpoint copy takes."""
    def wrap(command):
        for option in reversed((
                click.argument("model"),
                click.option("--refiner", default=None, help=refiner_help),
                click.option("--data", "data_dir", required=True, type=click.Path(),
                             help="dataset folder"),
                click.option("--split", default="train", show_default=True,
                             help="the split holding MODEL's recorded validation films"),
                click.option("--out", required=True, type=click.Path(),
                             help="checkpoint to write: a copy of REFINER (with --refiner), else of MODEL"),
                click.option("--into", default=None, metavar="CKPT",
                             help="write the result into a copy of CKPT instead: the same recipe "
                                  "retrained on every image (--val-count 0), which no film can "
                                  "judge, takes what its validated run's films chose"))):
            command = option(command)
        return command
    return wrap


def _fit_stages(model: str, refiner: str | None, out: str, into: str | None = None):
    """MODEL, its REFINER (or None) and the checkpoint a fit writes a copy of (the refiner's
    when given, or INTO), refusing exported artifacts, an INTO unlike the stage it stands for
    and an existing output the fit would clobber."""
    ref = resolve_model(model)
    second = resolve_model(refiner) if refiner else None
    fitted = second or ref
    target = resolve_model(into) if into else fitted
    for stage in (fitted, target):
        if not stage.is_checkpoint:
            raise UserError(f"{stage} is an exported artifact: fit the checkpoint it came from, "
                            "then export again")

    def kind(io):  # what a fitted choice depends on (a refiner ignores the letterbox's gap)
        return (io.input_height, io.input_width, io.mean, io.std, tuple(io.landmarks),
                io.patch_size, io.patch_factor)

    if kind(target.io) != kind(fitted.io):
        raise UserError(f"--into {target} takes another input or predicts other landmarks than "
                        f"{fitted}: it must be the same recipe's run")
    _check_outputs(files=(out,))
    return ref, second, target


@cli.group()
def uncertainty() -> None:
    """Which landmarks are likely far off: fit a model's or a cascade's per-landmark score."""


@uncertainty.command("fit")
@_fit_options("fit the cascade MODEL + REFINER; the score is stored in the refiner's copy")
def uncertainty_fit(model, refiner, data_dir, split, out, into) -> None:
    """Fit the per-landmark score of landmarks more than 4 mm off on MODEL's own validation
    films, flagging 10% of their landmarks, and write it into a copy of the checkpoint."""
    from dataclasses import replace

    from edgeld.uncertainty import attach_uncertainty, fit_on_validation

    ref, second, target = _fit_stages(model, refiner, out, into)
    spec = fit_on_validation(ref, second, data_dir, split)
    if into:
        spec = replace(spec, fitted_on=f"{spec.fitted_on}; carried over to {Path(into).name}, "
                                       "the same recipe trained on every image")
    attach_uncertainty(target, out, spec)
    click.echo(f"wrote {out}: per-landmark score fitted on {spec.fitted_on}; flagged above "
               f"{spec.threshold:.3f}")


@cli.group()
def decode() -> None:
    """How a model refines its heatmap peaks: choose it on the model's validation films."""


@decode.command("fit")
@_fit_options("choose REFINER's decoding behind MODEL; the choice is stored in the refiner's copy")
def decode_fit(model, refiner, data_dir, split, out, into) -> None:
    """Choose the sub-cell peak refinement (parabola vertex, or a local soft-argmax of radius
    1-8 cells) with the lowest MRE on MODEL's own validation films, and write it into a copy of
    the checkpoint. Refit `edgeld uncertainty fit` afterwards: its evidence moves with the points."""
    from edgeld.decode_fit import attach_radius, fit_radius

    ref, second, target = _fit_stages(model, refiner, out, into)
    fit = fit_radius(ref, second, data_dir, split)
    for r, mre in fit.mre_mm.items():
        click.echo(f"  {'parabola vertex' if r == 0 else f'soft-argmax radius {r}':<22} "
                   f"{mre:.3f} mm{'   <- chosen' if r == fit.radius else ''}")
    attach_radius(target, out, fit.radius)
    click.echo(f"wrote {out}: peak refinement chosen on {fit.fitted_on}")


@cli.command()
def doctor() -> None:
    """Which inference backends this machine has, and what is missing."""
    from edgeld.bench.device import backend_report

    for line in backend_report():
        click.echo(line)


@cli.command()
@click.option("--out", "out_dir", default="edgeld-demo", show_default=True)
def demo(out_dir) -> None:
    """The bundled student on bundled sample X-rays: detect, export to ONNX, evaluate, time."""
    from edgeld.demo import run_demo

    run_demo(Path(out_dir), echo=click.echo)


def _service_options(command):
    """MODEL, its refiners and where to listen: what both services take."""
    for decorator in reversed((
            click.argument("model"),
            click.option("--refiner", multiple=True, help="A cascade's refinement stage to run "
                         "after MODEL (repeat: coarse to fine)."),
            click.option("--host", default="127.0.0.1", show_default=True,
                         help="Address to listen on (0.0.0.0: every interface; see README, Serving)."),
            click.option("--port", type=click.IntRange(1, 65535), required=True))):
        command = decorator(command)
    return command


@cli.group()
def serve() -> None:
    """Serve the detector to devices: over HTTP, or as a DICOM node answering with an SR."""


@serve.command("http")
@_service_options
@click.option("--max-upload-mb", type=click.FloatRange(min=0, min_open=True), default=64.0,
              show_default=True, help="Larger uploads are refused with 413.")
def serve_http(model, refiner, host, port, max_upload_mb) -> None:
    """GET /healthz, GET /v1/model, POST /v1/detect (the `predict --json` record) on
    FastAPI/uvicorn (pip install 'edgeld[serve]'). Runs until SIGINT or SIGTERM."""
    import fastapi  # noqa: F401 - fail on a missing extra before loading the model
    import uvicorn  # noqa: F401

    from edgeld.serve.http import serve_http as run
    from edgeld.serve.service import DetectionService

    run(DetectionService(*_resolve(model, refiner)), host, port, int(max_upload_mb * 2**20),
        echo=lambda line: click.echo(line, err=True))


@serve.command("dicom")
@_service_options
@click.option("--ae-title", default="EDGELD", show_default=True, help="This node's AE title.")
@click.option("--out", "out_dir", default=None, help="Write each SR here (atomically).")
@click.option("--store-to", default=None, metavar="HOST:PORT:AET",
              help="Send each SR to this DICOM node (C-STORE), retrying while it is down.")
@click.option("--allow-ae", multiple=True, metavar="AET",
              help="Accept associations only from these calling AE titles (repeatable).")
def serve_dicom(model, refiner, host, port, ae_title, out_dir, store_to, allow_ae) -> None:
    """A DICOM Storage SCP (pip install 'edgeld[dicom]'): C-ECHO; C-STORE of DX, CR and
    secondary capture images, each answered with a Structured Report of its landmarks."""
    import highdicom  # noqa: F401 - fail on a missing extra before loading the model
    import pynetdicom  # noqa: F401

    from edgeld.serve.dicom_node import DicomNode, serve_dicom as run
    from edgeld.serve.forward import Destination

    if not (out_dir or store_to):
        raise UserError("give --out DIR and/or --store-to HOST:PORT:AET: where the SRs go")
    if not 0 < len(ae_title) <= 16 or any(len(a) > 16 or not a for a in allow_ae):
        raise UserError("AE titles are 1 to 16 characters")
    destination = Destination.parse(store_to) if store_to else None
    _check_outputs(folders=(out_dir,))
    from edgeld.serve.service import DetectionService

    node = DicomNode(DetectionService(*_resolve(model, refiner)), ae_title, out_dir, destination,
                     log=lambda line: click.echo(line, err=True))
    run(node, host, port, allow_ae)


def main() -> None:
    cli(prog_name="edgeld")
