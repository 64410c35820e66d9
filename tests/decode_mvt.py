#!/usr/bin/env python3
"""Decodes MVT files with mapbox-vector-tile (an independent decoder) and prints a
JSON summary per file: per layer, the feature count, ids, properties, the range of
tile coordinates and how many polygon rings break MVT 2.1 winding (exterior rings
must have positive area in y-down tile space, holes negative)."""
import json
import sys

import mapbox_vector_tile


def area2(ring):
    return sum(a[0] * b[1] - b[0] * a[1] for a, b in zip(ring, ring[1:] + ring[:1]))


def coords(geom):
    t, c = geom["type"], geom["coordinates"]
    if t == "Point":
        return [c]
    if t in ("LineString", "MultiPoint"):
        return c
    if t in ("Polygon", "MultiLineString"):
        return [p for part in c for p in part]
    return [p for poly in c for ring in poly for p in ring]


def polygons(geom):
    if geom["type"] == "Polygon":
        return [geom["coordinates"]]
    if geom["type"] == "MultiPolygon":
        return geom["coordinates"]
    return []


out = {}
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        data = f.read()
    tile = mapbox_vector_tile.decode(data, default_options={"y_coord_down": True}) if data else {}
    summary = {}
    for name, layer in tile.items():
        xs, ys, bad = [], [], 0
        # Label points (chizu writes one per lot or road name, without an id)
        # are listed apart from the layer's features (the decoder reads a missing id as 0).
        is_label = lambda f: f["geometry"]["type"] == "Point" and not f.get("id")
        labels = [f for f in layer["features"] if is_label(f)]
        features = [f for f in layer["features"] if not is_label(f)]
        for feat in layer["features"]:
            for p in coords(feat["geometry"]):
                xs.append(p[0])
                ys.append(p[1])
            for poly in polygons(feat["geometry"]):
                if area2(poly[0][:-1] if poly[0][0] == poly[0][-1] else poly[0]) <= 0:
                    bad += 1
                for hole in poly[1:]:
                    if area2(hole[:-1] if hole[0] == hole[-1] else hole) >= 0:
                        bad += 1
        summary[name] = {
            "extent": layer["extent"],
            "count": len(features),
            "ids": [f.get("id") for f in features],
            "properties": [f["properties"] for f in features],
            "types": sorted({f["geometry"]["type"] for f in features}),
            "labels": [{"properties": f["properties"], "at": f["geometry"]["coordinates"]} for f in labels],
            "min": min(xs + ys) if xs else None,
            "max": max(xs + ys) if xs else None,
            "bad_rings": bad,
        }
    out[path] = summary
json.dump(out, sys.stdout, ensure_ascii=False)
