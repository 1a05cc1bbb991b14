"""Basin and gauge series: the polygons and points users bring (``polygons``, ``points``), their
cell weights computed once per run (``weights``), each day's values (``days``) and the tables of
the whole range (``tables``)."""
