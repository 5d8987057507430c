"""The benchmark suite's harness: drivers for the systems under test
(drivers), the context a scenario is handed (context), summaries (stats),
/proc memory figures (procfs), the machine's description (machine) and the
report (report)."""
