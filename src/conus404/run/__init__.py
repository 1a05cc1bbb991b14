"""One run: the launcher behind run_pipeline.sh, the request's check, the driver and its scheduler,
the run's prefetcher, the retry pass, ledgers, locks, status and reports.
"""
