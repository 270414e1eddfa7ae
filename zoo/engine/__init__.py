"""The sweep engine: many cards measured in one command, between measurement and the facade.

It sits after `results` in the stage order because it records each run (zoo.results.store) as it
finishes and looks up runs it can reuse; measure and results never import it, the facade and the CLI do.
plan.py turns patterns into cards; sweep.py runs eval and bench sweeps (decode once per preprocessing,
resume from the store, one transaction per run, a summary of what was measured, reused, skipped, failed).
"""
