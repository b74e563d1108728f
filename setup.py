"""edgeld: anatomical landmark detection distilled for edge hardware."""
from pathlib import Path

from setuptools import find_packages, setup

CPU_RUNTIME = [
    "numpy>=1.24",
    "pillow>=10.0",
    "click>=8.1",
    "onnx>=1.16",
    "onnxruntime>=1.18",
    "safetensors>=0.4",
    "tqdm>=4.66",
]
TRAINING = [
    "torch==2.13.0",
    "onnxscript>=0.1",
    "onnxsim==0.8.1",
    "matplotlib>=3.8",
]
DICOM = ["pydicom>=2.4", "pynetdicom>=2.1", "highdicom>=0.23"]
SERVE = ["fastapi>=0.110", "uvicorn>=0.29", "python-multipart>=0.0.9"]

setup(
    name="edgeld",
    version="0.1.0",
    description="Anatomical landmark detection on X-rays, distilled and deployed to edge hardware",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["edgeld", "edgeld.*"]),
    package_data={"edgeld": ["weights/*.safetensors", "samples/*/*.*", "samples/*/*/*.*",
                               "schemas/*.schema.json"]},
    include_package_data=True,
    install_requires=CPU_RUNTIME,
    extras_require={
        # training, export and the torch backend of the benchmark
        "torch": TRAINING,
        "dev": TRAINING + DICOM + SERVE + [
            "pytest>=8.0", "pytest-timeout>=2.3", "hypothesis>=6", "jsonschema>=4.18",
            # the layer contracts in .importlinter, checked by the test suite
            "import-linter>=2.0",
            # the HTTP client of the serve tests
            "httpx>=0.27"],
        "trt": ["tensorrt>=10.3", "cuda-python>=12.6"],
        # DICOM input; `edgeld serve dicom` (DICOM networking) and Structured Reports
        "dicom": DICOM,
        # `edgeld serve http`
        "serve": SERVE,
    },
    entry_points={"console_scripts": ["edgeld=edgeld.cli:main"]},
)
