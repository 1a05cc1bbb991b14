"""The formulas of the derived variables (humidity, winds, reference evapotranspiration), each with
its source; :mod:`conus404.day.derived` says which variable uses which."""
