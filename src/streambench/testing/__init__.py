"""For users' test suites: the pytest plugin and hypothesis strategies."""
