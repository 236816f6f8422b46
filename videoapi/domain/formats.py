"""The result formats the API offers, named once."""

from __future__ import annotations

from videoapi.domain.exports import EXPORT_FILES

RESULT_FORMATS = ("json", *EXPORT_FILES, "rekognition")  # json, csv, edl, otio, fcpxml, xml, qp, rekognition
RESULT_EXTRAS = ("probabilities", "curve", "overview", "thumbnails")
