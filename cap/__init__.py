"""OASIS Common Alerting Protocol 1.2: build the XML of a warning, and read other agencies' alerts.

Pure functions over frozen dataclasses (no store, no web framework): ``cap.message`` builds a
document, ``cap.inbound`` parses one. Drill mode is enforced here: building a document for an
exercise with any status but Exercise raises ``ExerciseOnly`` (docs/alerts.md).
"""
from cap.inbound import InboundAlert, InvalidCap, parse_cap
from cap.message import (
    CAP_NAMESPACE,
    CapArea,
    CapInfo,
    CapMessage,
    CapReference,
    ExerciseOnly,
    cap_time,
    polygon_text,
    to_xml,
)

__all__ = ["CAP_NAMESPACE", "CapArea", "CapInfo", "CapMessage", "CapReference", "ExerciseOnly", "InboundAlert",
           "InvalidCap", "cap_time", "parse_cap", "polygon_text", "to_xml"]
