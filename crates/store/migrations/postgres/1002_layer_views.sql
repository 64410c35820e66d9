-- `chizu.<layer id>`: a view of each layer's current version, for QGIS, GDAL
-- and the city's own SQL (the data tables' names carry their versions).
CREATE SCHEMA IF NOT EXISTS chizu;
