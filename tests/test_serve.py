"""`edgeld serve http` and `edgeld serve dicom` against the real thing: each server is a real
`edgeld` process on loopback (free ports chosen here), spoken to over the wire by httpx and by a
pynetdicom SCU; a second SCP started here receives the Structured Reports. The model is the
shipped cascade (isbi2015-student + isbi2015-refiner); the cephalogram is the bundled ISBI 2015
test1 film 151 wrapped in a DX dataset here.
"""
from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("pynetdicom")
pytest.importorskip("highdicom")
httpx = pytest.importorskip("httpx")

from PIL import Image  # noqa: E402
from pydicom import dcmread  # noqa: E402
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.uid import ExplicitVRLittleEndian, generate_uid  # noqa: E402
from pynetdicom import AE, evt  # noqa: E402
from pynetdicom.sop_class import (  # noqa: E402
    ComprehensiveSRStorage, CTImageStorage, DigitalXRayImageStorageForPresentation, Verification)

from edgeld.demo import SAMPLES  # noqa: E402
from edgeld.serve.sr import read_sr_points  # noqa: E402

MODEL = ["isbi2015-student", "--refiner", "isbi2015-refiner"]
COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"
SCHEMA = Path(__file__).resolve().parents[1] / "edgeld" / "schemas" / "detection-result.schema.json"
FILM = SAMPLES / "images" / "151.jpg"
DEVICE_AE = "DEVICE"
STARTUP_S = 60  # loading torch and the cascade on a busy 2-core machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def edgeld(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgeld", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def stop(proc: subprocess.Popen) -> tuple[int, str]:
    """SIGTERM, then the exit code and stderr (killed after 30 s: the test fails then)."""
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return proc.returncode, err


def make_dx(pixels: np.ndarray, path: Path | None = None, sop_class=DigitalXRayImageStorageForPresentation,
            **tags) -> Dataset:
    """A DX dataset (MONOCHROME2, 16-bit words, 8 bits stored) of a grayscale film."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.PatientName, ds.PatientBirthDate, ds.PatientSex = "CEPH151", "Test^Ceph", "", "O"
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20260101", "120000", "1", ""
    ds.ReferringPhysicianName, ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "", "DX", 1, 1
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 8, 7, 0
    ds.PixelSpacing = [0.1, 0.1]
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    for key, value in tags.items():
        setattr(ds, key, value)
    if path is not None:
        ds.save_as(path, enforce_file_format=True)
    return ds


@pytest.fixture(scope="module")
def film() -> np.ndarray:
    return np.asarray(Image.open(FILM).convert("L"))


@pytest.fixture(scope="module")
def dicom_film(film, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("dicom") / "151.dcm"
    make_dx(film, path)
    return path


# ---------------------------------------------------------------- HTTP

@pytest.fixture(scope="module")
def http_url():
    port = free_port()
    proc = edgeld("serve", "http", *MODEL, "--port", str(port), "--max-upload-mb", "12")
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail(f"edgeld serve http did not come up: {proc.communicate()[1]}")
    yield url
    code, err = stop(proc)
    assert code == 0, err
    assert "Traceback" not in err


def test_http_detects_multipart_and_raw_with_one_shared_detector(http_url, dicom_film):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text())
    assert httpx.get(f"{http_url}/v1/model").json()["landmarks"][0] == "sella"
    with FILM.open("rb") as fh:
        form = httpx.post(f"{http_url}/v1/detect", files={"image": ("151.jpg", fh, "image/jpeg")},
                          data={"spacing_mm": "0.1"}, timeout=30)
    assert form.status_code == 200, form.text
    record = form.json()
    jsonschema.validate(record, schema)
    assert record["image"] == "151.jpg" and record["units"] == "mm" and len(record["landmarks"]) == 19
    raw = httpx.post(f"{http_url}/v1/detect", content=dicom_film.read_bytes(), timeout=30,
                     headers={"content-type": "application/dicom"})
    assert raw.status_code == 200, raw.text
    assert raw.json()["spacing_source"] == "PixelSpacing"
    # concurrent requests share the detector and get the same answer
    body = FILM.read_bytes()
    answers: list = []

    def post() -> None:
        answers.append(httpx.post(f"{http_url}/v1/detect?spacing_mm=0.1", content=body,
                                  headers={"content-type": "image/jpeg"}, timeout=60).json())

    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 4
    assert all(a["landmarks"] == answers[0]["landmarks"] for a in answers)
    assert [lm["x_px"] for lm in answers[0]["landmarks"]] == [lm["x_px"] for lm in record["landmarks"]]
    # an upload is decoded as `predict` decodes the file: a JPEG only as far as the cascade needs
    from edgeld.detect_file import detect_file
    from edgeld.load import open_detector

    with open_detector(MODEL[0], refiner=MODEL[2]) as detector:
        local = detect_file(detector, FILM, 0.1)
    got = np.array([[lm["x_px"], lm["y_px"]] for lm in record["landmarks"]])
    assert np.allclose(got, local.landmarks_px, atol=1e-6)


@pytest.mark.parametrize("case, status", [
    ("text", 415), ("not-an-image", 400), ("no-image-field", 400), ("too-large", 413),
    ("blank-film", 422), ("bad-spacing", 400)])
def test_http_refuses_bad_input_clearly_and_keeps_serving(http_url, tmp_path, case, status):
    blank = tmp_path / "blank.png"
    Image.fromarray(np.zeros((1000, 800), np.uint8)).save(blank)
    url = f"{http_url}/v1/detect"
    requests = {
        "text": lambda: httpx.post(url, content=b"hello", headers={"content-type": "text/plain"}),
        "not-an-image": lambda: httpx.post(url, content=b"GIF89a but not really" * 10,
                                           headers={"content-type": "image/gif"}),
        "no-image-field": lambda: httpx.post(url, files={"file": ("a.png", blank.read_bytes())}),
        "too-large": lambda: httpx.post(url, content=bytes(13 << 20),
                                        headers={"content-type": "image/png"}),
        "blank-film": lambda: httpx.post(url, content=blank.read_bytes(),
                                         headers={"content-type": "image/png"}),
        "bad-spacing": lambda: httpx.post(f"{url}?spacing_mm=-1", content=FILM.read_bytes(),
                                          headers={"content-type": "image/jpeg"}),
    }
    answer = requests[case]()
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert isinstance(body["error"], str) and "\n" not in body["error"]
    if case == "blank-film":
        assert body["quality"]["usable"] is False and body["quality"]["reason"]
    assert httpx.get(f"{http_url}/healthz").json()["status"] == "ok"


def test_serve_http_names_the_missing_extra(monkeypatch):
    from click.testing import CliRunner

    from edgeld.cli import cli

    monkeypatch.setitem(sys.modules, "fastapi", None)
    result = CliRunner().invoke(cli, ["serve", "http", "isbi2015-student", "--port", "1"])
    assert result.exit_code == 2
    assert "pip install 'edgeld[serve]'" in result.output


# ---------------------------------------------------------------- DICOM

class Receiver:
    """A Storage SCP standing for the PACS: keeps the SRs it is sent."""

    def __init__(self, port: int):
        self.received: list[Dataset] = []
        self.ae = AE(ae_title="PACS")
        self.ae.add_supported_context(ComprehensiveSRStorage)
        self.ae.add_supported_context(COMPREHENSIVE_3D_SR)
        self.server = self.ae.start_server(("127.0.0.1", port), block=False,
                                           evt_handlers=[(evt.EVT_C_STORE, self._store)])

    def _store(self, event) -> int:
        ds = event.dataset
        ds.file_meta = event.file_meta
        self.received.append(ds)
        return 0x0000

    def wait_for(self, count: int, timeout_s: float = 30) -> list[Dataset]:
        deadline = time.monotonic() + timeout_s
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.received

    def close(self) -> None:
        self.server.shutdown()


def associate(port: int, calling: str = DEVICE_AE, contexts=(Verification,
              DigitalXRayImageStorageForPresentation)):
    ae = AE(ae_title=calling)
    for context in contexts:
        ae.add_requested_context(context)
    return ae.associate("127.0.0.1", port, ae_title="EDGELD")


def send(port: int, ds: Dataset) -> Dataset:
    assoc = associate(port)
    assert assoc.is_established
    try:
        return assoc.send_c_store(ds)
    finally:
        assoc.release()


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """`edgeld serve dicom` with --out and --store-to a PACS that is NOT up yet (retries)."""
    out = tmp_path_factory.mktemp("sr-out")
    port, pacs_port = free_port(), free_port()
    proc = edgeld("serve", "dicom", *MODEL, "--port", str(port), "--out", str(out),
                  "--store-to", f"127.0.0.1:{pacs_port}:PACS", "--allow-ae", DEVICE_AE)
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline and proc.poll() is None:
        assoc = associate(port)
        if assoc.is_established:
            status = assoc.send_c_echo()
            assoc.release()
            assert status.Status == 0x0000
            break
        time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail(f"edgeld serve dicom did not come up: {proc.communicate()[1]}")
    state = {"proc": proc, "port": port, "pacs_port": pacs_port, "out": out}
    yield state
    if proc.poll() is None:
        proc.kill()
        proc.communicate()
    if state.get("pacs"):
        state["pacs"].close()


def _predict_json(dicom_film: Path, tmp_path: Path) -> tuple[dict, Path]:
    out, sr_dir = tmp_path / "pred.json", tmp_path / "sr"
    done = subprocess.run([sys.executable, "-m", "edgeld", "predict", *MODEL, str(dicom_film),
                           "--json", str(out), "--sr", str(sr_dir)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())[0], next(sr_dir.glob("*.sr.dcm"))


def test_dicom_round_trip_sr_points_equal_predict(node, dicom_film, tmp_path):
    source = dcmread(dicom_film)
    status = send(node["port"], source)
    assert status.Status == 0x0000
    record, offline_sr = _predict_json(dicom_film, tmp_path)  # meanwhile the node retries the PACS
    node["pacs"] = pacs = Receiver(node["pacs_port"])
    [sr] = pacs.wait_for(1)
    expected = {lm["name"]: (lm["x_px"], lm["y_px"], lm["confidence"], lm["uncertain"])
                for lm in record["landmarks"]}
    assert all(u is not None for *_, u in expected.values())  # the shipped cascade is fitted
    for got in (read_sr_points(sr), read_sr_points(dcmread(offline_sr))):
        assert set(got) == set(expected)
        for name, (x, y, c, u) in expected.items():
            assert abs(got[name][0] - x) <= 1e-3 and abs(got[name][1] - y) <= 1e-3, name
            assert abs(got[name][2] - c) <= 1e-5
            assert got[name][3] == u, name
    assert sr.SOPClassUID == COMPREHENSIVE_3D_SR
    assert sr.StudyInstanceUID == source.StudyInstanceUID and sr.PatientID == source.PatientID
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert evidence.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    texts = [str(e.value) for e in _elements(sr)]
    assert "isbi2015-student + isbi2015-refiner" in texts
    assert any(t.startswith("isbi2015-refiner sha256 ") and len(t.split()[-1]) == 64 for t in texts)
    kept = node["out"] / f"{source.SOPInstanceUID}.sr.dcm"
    assert dcmread(kept).SOPInstanceUID == sr.SOPInstanceUID


def _elements(ds: Dataset):
    """Every non-sequence element of a dataset, nested ones included."""
    for element in ds:
        if element.VR == "SQ":
            for item in element.value:
                yield from _elements(item)
        else:
            yield element


def test_a_dicom_whose_pixel_spacing_contradicts_its_anatomy_is_flagged(film, tmp_path):
    """A film whose PixelSpacing says 0.25 mm (it is a 0.1 mm film): predict warns, and the JSON
    record and the SR both carry the spacing the anatomy implies; mm still follow the header."""
    path = tmp_path / "151-wrong-spacing.dcm"
    make_dx(film, path, PixelSpacing=[0.25, 0.25])
    out, sr_dir = tmp_path / "pred.json", tmp_path / "sr"
    done = subprocess.run([sys.executable, "-m", "edgeld", "predict", *MODEL, str(path),
                           "--json", str(out), "--sr", str(sr_dir)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    [record] = json.loads(out.read_text())
    assert 0.08 < record["anatomy_spacing_mm"] < 0.12 and record["spacing_mm"] == [0.25, 0.25]
    warnings = [line for line in done.stderr.splitlines() if "contradicts its anatomy" in line]
    assert len(warnings) == 1 and "PixelSpacing" in warnings[0], done.stderr
    said = read_sr_points(dcmread(next(sr_dir.glob("*.sr.dcm"))))
    assert said["anatomy_spacing_mm"] == pytest.approx(record["anatomy_spacing_mm"])
    assert "unusable" not in said and len(said) == len(record["landmarks"]) + 1


def test_dicom_refuses_bad_input_and_keeps_serving(node, film):
    port, out = node["port"], node["out"]
    before = set(out.iterdir())
    # an unknown calling AE title and an SOP class that is no cephalogram: refused in association
    assert not associate(port, calling="STRANGER").is_established
    assoc = associate(port, contexts=(CTImageStorage,))
    assert not assoc.is_established or not assoc.accepted_contexts
    if assoc.is_established:
        assoc.release()
    # no pixel data, a declared size over the pixel limit, truncated pixel data: failure status
    no_pixels = make_dx(film)
    del no_pixels.PixelData
    huge = make_dx(np.zeros((4, 4), np.uint8), Rows=20000, Columns=20000)
    truncated = make_dx(film)
    truncated.PixelData = truncated.PixelData[:1000]
    for ds, words in ((no_pixels, "no pixel data"), (huge, "too large"), (truncated, "")):
        status = send(port, ds)
        assert 0xC000 <= status.Status <= 0xCFFF, hex(status.Status)
        assert words in status.get("ErrorComment", "")
    assert set(out.iterdir()) == before  # nothing written for them
    # a blank film: an SR that says it was not usable, and no points
    blank = make_dx(np.zeros((1000, 800), np.uint8))
    assert send(port, blank).Status == 0x0000
    said = read_sr_points(dcmread(out / f"{blank.SOPInstanceUID}.sr.dcm"))
    assert said == {"unusable": "blank or constant image"}
    # and a good film still goes through
    assert send(port, make_dx(film)).Status == 0x0000


def test_dicom_sigterm_finishes_the_image_in_flight(node, film):
    proc, port, out = node["proc"], node["port"], node["out"]
    ds = make_dx(film)
    result: dict = {}
    sender = threading.Thread(target=lambda: result.update(status=send(port, ds)))
    sender.start()
    time.sleep(0.3)  # the image is on its way or being measured
    code, err = stop(proc)
    sender.join(30)
    assert code == 0, err
    assert "Traceback" not in err
    assert result["status"].Status == 0x0000
    assert dcmread(out / f"{ds.SOPInstanceUID}.sr.dcm").SOPClassUID == COMPREHENSIVE_3D_SR
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left
