#!/usr/bin/env python3
"""Talks to chizu's OGC API - Features with OWSLib (an independent client) and
prints what it saw as JSON: collections, a bbox page and a CQL2-filtered page."""
import json
import sys

from owslib.ogcapi.features import Features

url = sys.argv[1]
bbox = [float(v) for v in sys.argv[2].split(",")]
chiban = sys.argv[3]
api = Features(url)
ids = sorted(c["id"] for c in api.collections()["collections"])
page = api.collection_items("parcels", bbox=bbox, limit=50)
filtered = api.collection_items("parcels", filter=f"chiban = '{chiban}'", limit=100)
queryables = api.collection_queryables("parcels")
print(json.dumps({
    "collections": ids,
    "bbox_returned": page["numberReturned"],
    "bbox_matched": page["numberMatched"],
    "bbox_coords": [c for f in page["features"] for poly in f["geometry"]["coordinates"] for ring in poly for c in ring],
    "filtered_chiban": [f["properties"]["chiban"] for f in filtered["features"]],
    "queryables": sorted(queryables["properties"].keys()),
}, ensure_ascii=False))
