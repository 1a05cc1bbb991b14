"""Reading the store: opening and signing it (``source``, ``token_service``), the storage's retries
(``storage_retry``), lost chunks refused (``lost_chunks``), and the fetch layer that reads each chunk
once (``chunk_cache``, ``chunk_cache_store``, ``prefetch_spool``, ``hour_slabs``, ``local_hours``,
``cached_hours``).
"""
