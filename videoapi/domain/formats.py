"""The result formats the API offers, named once."""

from __future__ import annotations

from videoapi.domain.exports import EXPORT_FILES

RESULT_FORMATS = ("json", *EXPORT_FILES, "rekognition")  # json, csv, edl, otio, fcpxml, xml, qp, rekognition
RESULT_EXTRAS = ("probabilities", "curve", "overview", "thumbnails")
FORMAT_DESCRIPTIONS = {
    "json": "the result document",
    "csv": "a shot per row",
    "edl": "CMX 3600",
    "otio": "OpenTimelineIO",
    "fcpxml": "Final Cut Pro X",
    "xml": "Final Cut Pro 7",
    "qp": "x264/x265 qpfile",
    "rekognition": "GetSegmentDetection's document",
}
