"""A detection as a DICOM Structured Report (highdicom; the `dicom` extra), for PACS viewers.

TID 1500 Measurement Report, Comprehensive 3D SR, in the source image's study, new series:
- one Planar ROI group (TID 1410) per landmark: tracking identifier = the landmark's name, an
  SCOORD POINT on the source image, a "Landmark confidence" measurement, and the algorithm
  identification (the cascade's name, edgeld's version, each model's sha256);
- for an image the model cannot measure, instead of points one Measurements group (TID 1501) whose
  qualitative evaluation says "Image not usable" with the reason as the coded value's meaning;
- for an image whose pixel spacing contradicts its anatomy, beside the points, one Measurements
  group "pixel spacing check" with the spacing the anatomy implies (mm) and a "No" verdict.

Coordinates: DICOM SCOORD puts (0, 0) at the top-left CORNER of the top-left pixel (PS3.3
C.18.6.1.2), edgeld at its CENTRE, so SCOORD = edgeld's x_px/y_px + 0.5 (`SCOORD_OFFSET`).
Codes that no standard terminology has (landmark names, confidence) use the private coding
scheme 99EDGELD, as DICOM allows for local codes.
"""
from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgeld import __version__
from edgeld.core.errors import UserError
from edgeld.core.files import atomic_write_bytes
from edgeld.info import model_info
from edgeld.runtime.detector import Detection
from edgeld.serve.service import Stage, cascade_name, stages_of

SCHEME = "99EDGELD"
SCOORD_OFFSET = 0.5  # edgeld pixel centres at integers; DICOM SCOORD pixel centres at +0.5
SR_SERIES_NUMBER = 9500  # a high number keeps derived series apart from the acquired ones
# SOP classes a cephalogram arrives as; the DICOM node accepts these and refuses the rest
IMAGE_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.1.1": "Digital X-Ray Image Storage - For Presentation",
    "1.2.840.10008.5.1.4.1.1.1.1.1": "Digital X-Ray Image Storage - For Processing",
    "1.2.840.10008.5.1.4.1.1.1": "Computed Radiography Image Storage",
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture Image Storage",
}


def _code(value: str, meaning: str):
    from highdicom.sr import CodedConcept

    return CodedConcept(value=value, scheme_designator=SCHEME, meaning=meaning[:64])


def structured_report(source: Any, detection: Detection, model_name: str,
                      stages: Sequence[Stage], version: str) -> Any:
    """The SR (a highdicom Comprehensive3DSR, a pydicom Dataset) of `detection` on `source`,
    the pydicom Dataset of the image it was found on (pixel data not needed)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    algorithm = hd.sr.AlgorithmIdentification(
        name=model_name[:64], version=f"edgeld {version}",
        parameters=[f"{stage.name} sha256 {stage.sha256}" for stage in stages])
    if detection.quality.usable:
        groups = _landmark_groups(source, detection, algorithm)
        if detection.anatomy_spacing_mm is not None:
            groups.append(_spacing_doubt_group(detection, algorithm))
    else:
        groups = [_unusable_group(detection, algorithm)]
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(),
        procedure_reported=_code("CEPH", "Cephalometric landmark detection"),
        imaging_measurements=groups,
        title=codes.DCM.ImagingMeasurementReport)
    return hd.sr.Comprehensive3DSR(
        evidence=[source], content=report, series_instance_uid=hd.UID(),
        series_number=SR_SERIES_NUMBER, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer="edgeld", series_description=f"edgeld landmarks ({model_name})"[:64],
        is_complete=True)


def _landmark_groups(source: Any, detection: Detection, algorithm: Any) -> list:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    image = hd.sr.SourceImageForRegion.from_source_image(source)
    groups = []
    for k, (name, point) in enumerate(zip(detection.names, detection.landmarks_px)):
        # a point just outside the film cannot be written as an image coordinate: put it on the edge
        scoord = np.clip(np.asarray(point, dtype=np.float64) + SCOORD_OFFSET, 0.0,
                         [float(source.Columns), float(source.Rows)])
        region = hd.sr.ImageRegion(graphic_type=hd.sr.GraphicTypeValues.POINT,
                                   graphic_data=scoord[None, :], source_image=image)
        confidence = hd.sr.Measurement(
            name=_code("CONF", "Landmark confidence"), value=float(detection.confidence[k]),
            unit=codes.UCUM.NoUnits, algorithm_id=algorithm)
        groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=name),
            referenced_region=region, finding_type=_code(f"L{k + 1:02d}", name),
            algorithm_id=algorithm, measurements=[confidence],
            qualitative_evaluations=_reliability(detection, k)))
    return groups


def _reliability(detection: Detection, k: int) -> list | None:
    """The per-landmark verdict of the model's fitted score (none without one): "uncertain"
    (likely more than 4 mm off: check it) or "reliable"."""
    import highdicom as hd

    if detection.uncertain is None:
        return None
    flagged = bool(detection.uncertain[k])
    value = (_code("UNCERTAIN", "Uncertain: likely more than 4 mm off")
             if flagged else _code("RELIABLE", "Not flagged as uncertain"))
    return [hd.sr.QualitativeEvaluation(name=_code("RELIAB", "Landmark reliability"), value=value)]


def _unusable_group(detection: Detection, algorithm: Any) -> Any:
    import highdicom as hd

    reason = detection.quality.reason or "not usable"
    verdict = hd.sr.QualitativeEvaluation(name=_code("USABLE", "Image usable for landmarks"),
                                          value=_code("UNUSABLE", reason))
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier="image quality"),
        algorithm_id=algorithm, qualitative_evaluations=[verdict])


def _spacing_doubt_group(detection: Detection, algorithm: Any) -> Any:
    """A warning that the image's pixel spacing contradicts its anatomy
    (runtime/spacing.py: contradicted_spacing), with the spacing the anatomy implies: the
    landmarks' positions are right in pixels, but distances taken in mm may be off by the ratio."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    verdict = hd.sr.QualitativeEvaluation(
        name=_code("SPACING", "Pixel spacing agrees with anatomy"),
        value=_code("CONTRADICTED", "No: check the image's pixel spacing"))
    implied = hd.sr.Measurement(
        name=_code("ANATSP", "Pixel spacing implied by anatomy"),
        value=float(detection.anatomy_spacing_mm), unit=codes.UCUM.Millimeter, algorithm_id=algorithm)
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier="pixel spacing check"),
        algorithm_id=algorithm, measurements=[implied], qualitative_evaluations=[verdict])


def sr_bytes(sr: Any) -> bytes:
    """The SR as a DICOM Part 10 file."""
    buffer = io.BytesIO()
    sr.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def sr_file_name(source_uid: str) -> str:
    """The SR's file name from its source image's SOP Instance UID: only digits and dots survive
    (a UID from the network must not steer the path), 64 characters at most."""
    clean = re.sub(r"[^0-9.]", "", str(source_uid))[:64].strip(".")
    return f"{clean or 'unknown'}.sr.dcm"


def write_sr(sr: Any, source_uid: str, folder: str | Path) -> Path:
    """Write the SR into `folder`, atomically (whole or not at all)."""
    path = Path(folder) / sr_file_name(source_uid)
    atomic_write_bytes(path, sr_bytes(sr))
    return path


def write_offline_sr(dicom_path: str | Path, detection: Detection, refs: Sequence[Any],
                     folder: str | Path) -> Path:
    """`predict --sr`: the SR of a detection on a DICOM file, written into `folder`."""
    import pydicom

    source = pydicom.dcmread(dicom_path, stop_before_pixels=True)
    for keyword in ("Rows", "Columns", "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID"):
        if keyword not in source:
            raise UserError(f"{dicom_path}: no {keyword}, so no SR can reference this image")
    stages = stages_of([model_info(ref) for ref in refs])
    sr = structured_report(source, detection, cascade_name(stages), stages, __version__)
    return write_sr(sr, source.SOPInstanceUID, folder)


def read_sr_points(sr_dataset: Any) -> dict[str, Any]:
    """Read an SR this module wrote back: {landmark name: (x_px, y_px, confidence, uncertain)} in
    edgeld's pixel convention (uncertain: None when the SR carries no reliability verdict), plus
    "unusable": the reason when the SR says the image was not usable, and "anatomy_spacing_mm"
    when it says the image's pixel spacing contradicts its anatomy."""
    import highdicom as hd

    sr = hd.sr.Comprehensive3DSR.from_dataset(sr_dataset)
    out: dict[str, Any] = {}
    for group in sr.content.get_planar_roi_measurement_groups():
        x, y = np.asarray(group.roi.value, dtype=np.float64)[0] - SCOORD_OFFSET
        confidence = group.get_measurements()[0].value
        verdicts = [e.value.value for e in group.get_qualitative_evaluations()]
        uncertain = verdicts[0] == "UNCERTAIN" if verdicts else None
        out[group.tracking_identifier] = (float(x), float(y), float(confidence), uncertain)
    for group in sr.content.get_image_measurement_groups():
        for evaluation in group.get_qualitative_evaluations():
            if evaluation.name.value == "USABLE":
                out["unusable"] = evaluation.value.meaning
        for measurement in group.get_measurements():
            if measurement.name.value == "ANATSP":
                out["anatomy_spacing_mm"] = float(measurement.value)
    return out
