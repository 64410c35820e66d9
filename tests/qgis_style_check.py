#!/usr/bin/python3
"""Converts MapLibre styles with QGIS's own converter (QgsMapBoxGlStyleConverter,
what QGIS runs when a user loads a vector tile layer's style), headless, and
prints per style file what QGIS made of it: its warnings, the renderer styles
(name, filter, the expression of a data-defined fill or stroke colour) and
the label styles (name, field, filter). Needs Debian's python3-qgis, hence
/usr/bin/python3 (not a virtual environment's).

    tests/qgis_style_check.py public.json [staff.json ...]
"""
import json
import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")

from qgis.core import (  # noqa: E402
    Qgis,
    QgsApplication,
    QgsMapBoxGlStyleConverter,
    QgsSymbolLayer,
)

app = QgsApplication([], False)
app.initQgis()


def colour_expression(symbol):
    if symbol is None or symbol.symbolLayerCount() == 0:
        return None
    properties = symbol.symbolLayer(0).dataDefinedProperties()
    for key in (QgsSymbolLayer.PropertyFillColor, QgsSymbolLayer.PropertyStrokeColor):
        prop = properties.property(key)
        if prop and prop.isActive():
            return prop.expressionString()
    return None


out = {"qgis": Qgis.QGIS_VERSION}
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        style = json.load(f)
    converter = QgsMapBoxGlStyleConverter()
    result = converter.convert(style)
    renderer = converter.renderer()
    labeling = converter.labeling()
    out[path] = {
        "result": int(result),
        "error": converter.errorMessage(),
        "warnings": list(converter.warnings()),
        "styles": [
            {"name": s.styleName(), "filter": s.filterExpression(), "colour": colour_expression(s.symbol())}
            for s in (renderer.styles() if renderer else [])
        ],
        "labels": [
            {"name": s.styleName(), "field": s.labelSettings().fieldName, "filter": s.filterExpression()}
            for s in (labeling.styles() if labeling else [])
        ],
    }
app.exitQgis()
json.dump(out, sys.stdout, ensure_ascii=False)
