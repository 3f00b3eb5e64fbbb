"""What a run leaves and what is read back from it: the run's files (strict JSON, the metric log),
result tables with paired ratios and their intervals, and figures."""
