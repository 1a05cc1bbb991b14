"""What the user asked for, read and checked once: src/config.py, the environment and the flags
become one Settings (``settings``) made of frozen parts (``parts``); how each value is parsed
(``setting_values``, ``output_settings``, ``output_values``, ``day_boundary``, ``retry_policy``) and
where a data folder keeps things (``data_folder``).
"""
