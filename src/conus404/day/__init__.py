"""The science of one day, as stages: plan -> read (``day_reader``) -> aggregate (``aggregation``,
``derived`` with ``humidity``, ``winds``, ``reference_et``) -> check (``validation``, ``qc_bounds``)
-> write (the outputs); ``worker`` runs them for one day.
"""
