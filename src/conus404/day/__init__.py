"""The science of one day, as stages: plan (``plan``) -> read (``day_reader``) -> aggregate
(``aggregate``, ``aggregation``, ``derived`` with ``formulas/``, ``output_units``) -> check
(``validation``, ``qc_bounds``) -> write (``day_outputs``: the outputs, each a
``conus404.outputs.day_output.DayOutput``); ``worker`` conducts them for one day and ``reuse``
keeps an earlier attempt's file.
"""
