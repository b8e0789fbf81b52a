"""Running builds and measuring them: the build registry, verify, the killer of crash tests,
the latency reader and the experiments runner."""
