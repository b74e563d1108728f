"""Limits every image reader enforces (Pillow formats and DICOM alike). Constants only, no imports,
so each reader can depend on it without depending on another reader."""

# Decoding a 200-megapixel file is almost certainly a mistake on an X-ray device; refuse it before
# allocating. Pillow raises only above twice its limit (and merely warns between), so the header
# size is checked as well.
MAX_PIXELS = 200_000_000
