#!/usr/bin/env python3
"""Writes public.json and staff.json, the MapLibre style templates chizu fills in
per caller (see crates/server/src/web.rs). The staff style is the public one
plus the internal layers; generating both from one list keeps them in step.
Run after editing: python3 styles/make_styles.py"""
import json, pathlib

FONT = ["Noto Sans CJK JP Regular"]
FONT_BOLD = ["Noto Sans CJK JP Bold"]

def t(ja, en):
    return {"ja": ja, "en": en}

def legend(*items):
    return {"chizu:legend": [dict(label=label, color=color, kind=kind) for label, color, kind in items]}

# 用途地域: the customary colours of Japanese city-planning maps (greens for
# low-rise residential, yellows and orange for residential, pinks and red for
# commercial, purple and blues for industrial).
ZONES = [
    ("第一種低層住居専用地域", "Category 1 low-rise residential", "#3aa56b"),
    ("第二種低層住居専用地域", "Category 2 low-rise residential", "#8fd19e"),
    ("田園住居地域", "Rural residential", "#c5e3a1"),
    ("第一種中高層住居専用地域", "Category 1 mid/high-rise residential", "#a5d46a"),
    ("第二種中高層住居専用地域", "Category 2 mid/high-rise residential", "#d4e88a"),
    ("第一種住居地域", "Category 1 residential", "#fbe96a"),
    ("第二種住居地域", "Category 2 residential", "#f9d56b"),
    ("準住居地域", "Quasi-residential", "#f7b55e"),
    ("近隣商業地域", "Neighbourhood commercial", "#f6b3c8"),
    ("商業地域", "Commercial", "#ea5b5b"),
    ("準工業地域", "Quasi-industrial", "#b58ad1"),
    ("工業地域", "Industrial", "#8ec5ec"),
    ("工業専用地域", "Exclusively industrial", "#4a90d9"),
]

HAZARDS = [
    # (type, title, colour per rank 1..4)
    ("flood", t("洪水浸水想定区域", "Flood inundation"), ["#bfe3f5", "#7cc3ea", "#3d8fd1", "#1d4f9c"]),
    ("tsunami", t("津波浸水想定区域", "Tsunami inundation"), ["#d6c8ef", "#a98fde", "#7555c1"]),
    ("storm_surge", t("高潮浸水想定区域", "Storm-surge inundation"), ["#c9ece6", "#84d0c4", "#3aa696"]),
    ("landslide", t("土砂災害警戒区域", "Landslide hazard zone"), ["#f5d36b", "#e0533d"]),
]

# Label points share their layer with the features: drawing layers take the
# geometries, symbol layers the points.
POINTS = ["==", ["geometry-type"], "Point"]
NOT_POINTS = ["!=", ["geometry-type"], "Point"]

def match_colour(field, pairs, default):
    # Each label as a one-element array: MapLibre reads both forms, and
    # QGIS 3.22's converter only the array (a bare string becomes `IN ()`).
    expr = ["match", ["get", field]]
    for value, colour in pairs:
        expr += [[value], colour]
    return expr + [default]

def hazard_layers():
    layers = []
    for kind, title, colours in HAZARDS:
        colour = match_colour("rank", list(enumerate(colours, start=1)), colours[-1])
        is_kind = ["==", ["get", "hazard_type"], kind]
        layers.append({"id": f"hazard-{kind}-fill", "type": "fill", "source": "chizu", "source-layer": "hazard",
                       "filter": is_kind, "layout": {"visibility": "none"},
                       "paint": {"fill-color": colour, "fill-opacity": 0.4},
                       "metadata": legend(*[(t(f"{title['ja']} ランク{r}", f"{title['en']}, rank {r}"), c, "fill")
                                            for r, c in enumerate(colours, start=1)])})
        layers.append({"id": f"hazard-{kind}-outline", "type": "line", "source": "chizu", "source-layer": "hazard",
                       "filter": is_kind, "layout": {"visibility": "none"},
                       "paint": {"line-color": colour, "line-width": 1}})
    return layers

def public_layers():
    return [
        {"id": "background", "type": "background", "paint": {"background-color": "#f4f1ea"}},
        {"id": "background-tiles", "type": "raster", "source": "background",
         "metadata": {"chizu:group": "background"}},
        {"id": "boundary-fill", "type": "fill", "source": "chizu", "source-layer": "boundary",
         "paint": {"fill-color": "#ffffff", "fill-opacity": 0.6}},
        {"id": "zoning-fill", "type": "fill", "source": "chizu", "source-layer": "zoning",
         "paint": {"fill-color": match_colour("youto", [(z[0], z[2]) for z in ZONES], "#cccccc"),
                   "fill-opacity": ["interpolate", ["linear"], ["zoom"], 10, 0.55, 16, 0.35]},
         "metadata": legend(*[(t(ja, en), c, "fill") for ja, en, c in ZONES])},
        {"id": "zoning-outline", "type": "line", "source": "chizu", "source-layer": "zoning",
         "minzoom": 13,
         "paint": {"line-color": "#7a6f5a", "line-width": 0.6, "line-opacity": 0.6}},
        # Hazard areas start hidden: they would cover the zoning colours. One
        # pair of layers per hazard type, coloured by rank with "match": the
        # expressions QGIS's MapLibre style converter understands.
        *hazard_layers(),
        {"id": "parcels-fill", "type": "fill", "source": "chizu", "source-layer": "parcels",
         "paint": {"fill-color": "#fffdf5", "fill-opacity": 0.25}},
        {"id": "parcels-outline", "type": "line", "source": "chizu", "source-layer": "parcels",
         "paint": {"line-color": "#8a4b2a",
                   "line-width": ["interpolate", ["linear"], ["zoom"], 14, 0.4, 18, 1.2]},
         "metadata": legend((t("筆界", "Parcel boundary"), "#8a4b2a", "line"))},
        {"id": "roads-minor", "type": "line", "source": "chizu", "source-layer": "roads",
         "filter": ["match", ["get", "road_class"], ["一般国道", "主要地方道", "市道 (幹線)"], False, True],
         "layout": {"line-cap": "round", "line-join": "round"},
         "paint": {"line-color": "#ffffff",
                   "line-width": ["interpolate", ["exponential", 1.6], ["zoom"], 12, 0.8, 18, 8]},
         "metadata": legend((t("市道", "City road"), "#b9b2a4", "line"))},
        {"id": "roads-major", "type": "line", "source": "chizu", "source-layer": "roads",
         "filter": ["match", ["get", "road_class"], ["一般国道", "主要地方道", "市道 (幹線)"], True, False],
         "layout": {"line-cap": "round", "line-join": "round"},
         "paint": {"line-color": match_colour("road_class", [("一般国道", "#e8743b"), ("主要地方道", "#f2b134")], "#f6d982"),
                   "line-width": ["interpolate", ["exponential", 1.6], ["zoom"], 12, 1.6, 18, 14]},
         "metadata": legend((t("一般国道", "National road"), "#e8743b", "line"),
                            (t("主要地方道", "Major prefectural road"), "#f2b134", "line"),
                            (t("市道 (幹線)", "City trunk road"), "#f6d982", "line"))},
        {"id": "boundary-line", "type": "line", "source": "chizu", "source-layer": "boundary",
         "paint": {"line-color": "#5b4a8a", "line-width": 2, "line-dasharray": [3, 2]},
         "metadata": legend((t("市境", "City boundary"), "#5b4a8a", "line"))},
        # Label points: chizu writes one per lot (its pole of inaccessibility)
        # into the one tile that holds it, so a lot crossing a tile edge is
        # labelled once.
        {"id": "parcels-chiban", "type": "symbol", "source": "chizu", "source-layer": "parcels",
         "minzoom": 17, "filter": POINTS,
         "layout": {"text-field": ["get", "chiban"], "text-font": FONT, "text-size": 11,
                    "text-allow-overlap": False, "symbol-placement": "point"},
         "paint": {"text-color": "#5a2e16", "text-halo-color": "#ffffff", "text-halo-width": 1.2}},
        # One label point per road name (half-way along its longest segment,
        # with the road's angle), not one per segment and tile.
        {"id": "roads-name", "type": "symbol", "source": "chizu", "source-layer": "roads",
         "minzoom": 15, "filter": POINTS,
         "layout": {"text-field": ["get", "route_name"], "text-font": FONT_BOLD, "text-size": 12,
                    "text-rotate": ["get", "chizu:angle"], "text-rotation-alignment": "map",
                    "symbol-placement": "point"},
         "paint": {"text-color": "#3d3d3d", "text-halo-color": "#ffffff", "text-halo-width": 1.5}},
    ]

def staff_layers():
    layers = public_layers()
    pipes = [
        # Width by diameter in three classes (a data-driven "interpolate" is
        # beyond QGIS's converter), colour by network.
        *[{"id": f"water_pipes-{name}", "type": "line", "source": "chizu", "source-layer": "water_pipes",
           **({"filter": test} if test else {}), "layout": {"line-cap": "round"},
           "paint": {"line-color": match_colour("network", [("water", "#1f78d1"), ("sewer", "#9c5b2e")], "#666666"),
                     "line-width": width},
           **({"metadata": legend((t("上水道 (配水管)", "Water main"), "#1f78d1", "line"),
                                  (t("下水道 (汚水管)", "Sewer main"), "#9c5b2e", "line"),
                                  (t("線の太さ = 口径 (150 mm 未満 / 300 mm 未満 / 以上)",
                                     "Line width = diameter (< 150 mm / < 300 mm / more)"), "#555555", "line"))}
              if name == "small" else {})}
          for name, test, width in [
              # Every pipe (a missing diameter too), the wider classes over it.
              ("small", None, 1.2),
              ("medium", ["all", [">=", ["get", "diameter_mm"], 150], ["<", ["get", "diameter_mm"], 300]], 2.5),
              ("large", [">=", ["get", "diameter_mm"], 300], 5)]],
        # Legacy "{field}" tokens: read alike by MapLibre and QGIS.
        {"id": "water_pipes-label", "type": "symbol", "source": "chizu", "source-layer": "water_pipes",
         "minzoom": 18,
         "layout": {"text-field": "φ{diameter_mm} {material}",
                    "text-font": FONT, "text-size": 10, "symbol-placement": "line"},
         "paint": {"text-color": "#123a66", "text-halo-color": "#ffffff", "text-halo-width": 1.2}},
    ]
    # Pipes draw above roads and parcels, under the labels.
    at = next(i for i, l in enumerate(layers) if l["type"] == "symbol")
    return layers[:at] + pipes + layers[at:]

# Which layers answer a click, most specific first (a lot, then what applies
# to it). chizu drops the ids a caller may not read.
POPUP_ORDER = ["parcels", "water_pipes", "zoning", "hazard", "roads"]

# The city's disclaimer (免責事項), shown on the maps and printed on every page.
DISCLAIMER = t(
    "この地図は鹿島市が保有する情報を参考として提供するものです。土地の境界や権利、災害の危険性を証明するものではありません。"
    "正確な情報は各担当課にお問い合わせください。掲載内容により生じた損害について、鹿島市は責任を負いません。",
    "This map shows information held by Kashima City for reference only. It does not certify land boundaries, rights "
    "or the danger of disasters. Ask the responsible department for authoritative information. Kashima City accepts "
    "no liability for damage arising from the contents of this map.")

# Fields a popup leaves out: internal states mean nothing to residents.
PUBLIC_POPUP_HIDDEN = {"hazard": ["status"]}

def style(name, title, layers):
    metadata = {"chizu:title": t(*title.split(" / ")), "chizu:popup-order": POPUP_ORDER,
                "chizu:disclaimer": DISCLAIMER}
    if name == "public":
        metadata["chizu:popup-hidden-fields"] = PUBLIC_POPUP_HIDDEN
    return {
        "version": 8,
        "name": title,
        "metadata": metadata,
        "center": [130.0991, 33.1036],
        "zoom": 13,
        "glyphs": "/fonts/{fontstack}/{range}.pbf",
        "sources": {
            "chizu": {"type": "vector", "url": "chizu:layers", "maxzoom": 16},
            "background": {"type": "raster", "url": "chizu:background", "tileSize": 256, "maxzoom": 18},
        },
        "layers": layers,
    }

here = pathlib.Path(__file__).parent
for name, title, layers in [("public", "鹿島市 公開地図 / Kashima public map", public_layers()),
                            ("staff", "鹿島市 統合型GIS (職員) / Kashima staff map", staff_layers())]:
    (here / f"{name}.json").write_text(json.dumps(style(name, title, layers), ensure_ascii=False, indent=2) + "\n")
