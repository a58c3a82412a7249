"""The benchmark: load generators, the baseline app and the report (`bench/run`)."""
