"""Stage 4, results: the typed run record, the SQLite store, which runs a comparison uses, ranking and plots."""
