"""Lists a PMTiles archive with the Protomaps Python reader (independent of
chizu): header, metadata, and every tile's z/x/y with the SHA-256 of its
decompressed bytes, as one JSON document on stdout."""
import gzip
import hashlib
import json
import sys

from pmtiles.reader import MmapSource, Reader, all_tiles

with open(sys.argv[1], "rb") as f:
    reader = Reader(MmapSource(f))
    header = reader.header()
    tiles = []
    for (z, x, y), data in all_tiles(reader.get_bytes):
        raw = gzip.decompress(data)
        tiles.append([z, x, y, hashlib.sha256(raw).hexdigest()])
    print(json.dumps({
        "spec_version": header["version"],
        "tile_type": str(header["tile_type"]),
        "tile_compression": str(header["tile_compression"]),
        "min_zoom": header["min_zoom"],
        "max_zoom": header["max_zoom"],
        "clustered": header["clustered"],
        "metadata": reader.metadata(),
        "tiles": tiles,
    }))
