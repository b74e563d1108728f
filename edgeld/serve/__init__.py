"""Services that put the detector where a device can reach it: an HTTP service (FastAPI on uvicorn,
the `serve` extra) and a DICOM Storage node that answers with a Structured Report (pynetdicom and
highdicom, the `dicom` extra). Both share one `DetectionService`. The optional packages are
imported inside the modules that need them, so `import edgeld.serve` works without them.
"""
