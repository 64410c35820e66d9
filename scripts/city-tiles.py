#!/usr/bin/env python3
"""Prints the tile paths covering central Kashima at z14-z16 for the given
layers (comma-separated): the fixed list the load scripts request.
    scripts/city-tiles.py parcels,roads,zoning,hazard,boundary > tiles.txt"""
import math
import sys


def tile(lon, lat, z):
    n = 2 ** z
    y = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n
    return int((lon + 180) / 360 * n), int(y)


layers = sys.argv[1]
for z in (14, 15, 16):
    x0, y0 = tile(130.05, 33.13, z)
    x1, y1 = tile(130.16, 33.02, z)
    for x in range(x0, x1 + 1):
        for y in range(y0, y1 + 1):
            print(f"/tiles/{layers}/{z}/{x}/{y}.mvt")
