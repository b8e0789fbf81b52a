"""Making and replaying inputs: the deterministic generator and the open-loop replayer."""
