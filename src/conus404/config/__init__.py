"""What the user asked for, read and checked once: src/config.py, the environment and the flags
become one Settings (``settings``); how each value is parsed (``setting_values``, ``output_settings``,
``day_boundary``, ``retry_policy``) and where a data folder keeps things (``data_folder``).
"""
