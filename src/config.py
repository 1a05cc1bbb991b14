"""Your settings for a pipeline run. Edit this file, or override any value with a flag
(`./run_pipeline.sh --help` lists them). The STAC and SAS URLs can also be set with the
environment variables CONUS404_STAC_URL and PC_SDK_SAS_URL (the emulator does this).
"""

# --- What to download -----------------------------------------------------------------------
START_DATE = "2021-01-01"  # first UTC day, YYYY-MM-DD (the record starts 1979-10-01)
END_DATE = "2021-01-31"  # last UTC day, inclusive (the PC record ends 2022-09-30T23Z)

# Variables and the seed's aggregation hint: True = daily mean, False = daily sum.
# The pipeline aggregates each variable by its class (instantaneous -> mean of 00..23Z,
# accumulated over prior 60 minutes -> sum of 01Z..00Z(+1), running totals -> difference)
# and warns in the log when a hint here contradicts that class.
VARIABLE_AGG_MAP = {
    "T2": True,  # 2-m temperature, K
    "TD2": True,  # 2-m dew point, K
    "Q2": True,  # 2-m water vapour mixing ratio, kg kg-1
    "PSFC": True,  # surface pressure, Pa
    "U10": True,  # 10-m wind, grid-relative, m s-1
    "V10": True,
    "PREC_ACC_NC": False,  # precipitation accumulated over the prior 60 minutes, mm
}

# Only a region: MIN_LON, MIN_LAT, MAX_LON, MAX_LAT in degrees, e.g. (-105.5, 39.0, -104.5, 40.2);
# the files then hold the smallest window of the grid that covers it. None = the whole domain.
BBOX = None

# Basin and gauge series (docs/outputs.md: "Basin and gauge series"): a vector file of polygons with the
# field that names them, and/or points (a CSV id,lon,lat, or a vector file with POINT_ID). Paths
# relative to the project folder. SERIES_ONLY keeps the series without the gridded daily files.
POLYGONS = None  # e.g. "gis/huc8_colorado.gpkg"
POLYGON_ID = None  # e.g. "huc8"
POINTS = None  # e.g. "gis/gauges.csv"
POINT_ID = None
SERIES_ONLY = False
SKIP_OFF_GRID = False  # leave out polygons/points wholly off the grid (named in a warning) instead of refusing the file

# Roll-ups of the daily files written at the end of a run: any of "monthly", "annual",
# "water-year" (1 Oct .. 30 Sep); ALLOW_PARTIAL writes a period before all its days are done.
ROLLUPS = []
ALLOW_PARTIAL = False
# One Zarr store of the range besides the daily files: a path (relative to the project) or an
# fsspec URL (options as for OUTPUT_URL); chunks are days, south_north, west_east.
OUTPUT_ZARR = None  # e.g. "data/conus404.zarr" or "s3://bucket/conus404.zarr"
ZARR_CHUNKS = (36, 350, 350)
# The four corners of every cell (lat_bnds, lon_bnds) in each daily file, for conservative
# regridding such as cdo remapcon. Off by default: on the full grid they add about 14 MB and a
# few seconds of writing to every daily file.
CELL_CORNERS = False
# zlib level of the daily files' fields, 0 (uncompressed) to 9. Level 1 (compressed by ISA-L) is
# nearly as small as 4 and quicker to write: four full-grid fields written and checked in 0.20-0.24 s
# against 0.45-0.56 s at 4; 0 takes 0.09-0.17 s, into a file 1.6x larger (three probes, on the
# benchmark's synthetic fields; real fields compress better, so there 0 costs more disk).
COMPRESSION_LEVEL = 1
# Daily fields in other units than the source's (UDUNITS names, converted with cf-units), e.g.
# {"T2": "degC", "PREC_ACC_NC": "in"}; a unit a variable cannot be converted to stops the run.
UNITS = {}
# Days of a fixed offset from UTC, e.g. "-06:00" (US Central standard time, no daylight saving).
DAY_BOUNDARY = "UTC"

# Extra daily statistics besides each variable's own (mean or total), e.g. {"T2": ["min", "max"]}
# -> T2_min, T2_max from the 24 hourly values. Also --statistics "T2:min,max", or inline in the
# variable list: --variables T2:mean,min,max,PREC_ACC_NC (or VARIABLES = ["T2:mean,min,max", ...]
# here, which then replaces VARIABLE_AGG_MAP's keys). Naming rule: the variable's own statistic
# keeps its name (T2, PREC_ACC_NC), any other gets _STAT (T2_min, PREC_ACC_NC_max).
# A default run computes each variable's own daily value only; extra statistics cost a pass over
# the hourly records each and a field to compress and write, so they are asked for, not assumed.
EXTRA_STATISTICS = {}
KEEP_HOURLY = False  # also keep each day's hourly records in data/unprocessed/24hours/
OVERVIEW = False  # at the end of a run, draw DATA_DIR/pictures/overview_START_END.png: each field's mean per day
CHUNK_CACHE = True  # stores with multi-day chunks (HyTEST): fetch each chunk once per run, not once per day
PREFETCH = True  # remote sources: one process fetches the next days' chunks while the day processes work
ALLOW_3D = False  # variables with levels (P, TK, QVAPOR, ...) are ~6 GB a day each: opt in
MAX_NAN_FRACTION = 0.01  # share of missing cells a record or day may have before it fails
# The checks refuse broken data (lost chunks, wrong units, impossible values) and flag what the model
# can give but a person would not expect (2-m dew point above temperature in fog, the tiny negative
# humidities and amounts WRF leaves, values outside climatology): a flagged day is published unchanged
# and says what was flagged (its QC report, the file's conus404_qc_flags). True refuses flagged days too.
STRICT_QC = False
# Real stores lose chunks (hytest-org/hytest#395). 0: a lost hour refuses its day. N: up to N lost hours a
# day of an instantaneous variable are filled by linear interpolation in time (never sums or running
# totals, never the day's first or last record), each named in the QC report and the file.
FILL_MISSING_HOURS = 0

# --- How to run -----------------------------------------------------------------------------
MAX_CONCURRENT_PROCESSES = 2  # day workers running at once
DAYS_PER_WORKER = 1  # days each worker process runs in turn (a process per day costs little: see LAUNCH)
# "prewarmed": each worker process is forked from one template process that has already imported
# everything a day needs (saves ~0.5-1 s per process); "cold": a new Python interpreter per process.
LAUNCH = "prewarmed"
DATA_DIR = "data"  # relative to the project folder, or absolute (with the dask executor: shared by its workers)
# Also publish the daily files to an fsspec URL, e.g. "s3://bucket/conus404/daily" (options, such as
# credentials, as JSON in the environment variable CONUS404_OUTPUT_STORAGE_OPTIONS, or here). Each
# day is made under DATA_DIR, uploaded, committed with a record beside it, then removed locally.
OUTPUT_URL = None
OUTPUT_STORAGE_OPTIONS = {}

# Where day workers run: "subprocess" (children of the driver, on this machine) or "dask" (one task
# per worker on a dask.distributed cluster). With "dask", DASK_SCHEDULER_ADDRESS = None starts a
# LocalCluster of MAX_CONCURRENT_PROCESSES workers here; an address ("tcp://10.0.0.5:8786") or a
# scheduler file uses an existing cluster, e.g. Slurm workers from dask-jobqueue (see docs/sources-and-executors.md).
EXECUTOR = "subprocess"
DASK_SCHEDULER_ADDRESS = None

# Retries of every remote request (blob reads, catalogue, SAS tokens): waits grow from
# initial_backoff_s to max_backoff_s, jittered, never shorter than a server's Retry-After.
# What still fails is a transient failure of the day, which the retry pass takes again.
RETRY = {"attempts": 6, "initial_backoff_s": 0.1, "max_backoff_s": 20.0, "jitter": 0.5}

# --- Where the data come from ---------------------------------------------------------------
SOURCE = "planetary-computer"  # or a Zarr URL / local path with the CONUS404 layout
STAC_URL = "https://planetarycomputer.microsoft.com/api/stac/v1"
SAS_URL = "https://planetarycomputer.microsoft.com/api/sas/v1/token"
COLLECTION = "conus404"
ASSET = "zarr-abfs"
# fsspec options for a SOURCE given as a URL, e.g. {"anon": True}; credentials are better given as
# JSON in the environment variable CONUS404_STORAGE_OPTIONS, which replaces this value.
STORAGE_OPTIONS = {}
