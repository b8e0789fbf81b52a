"""The report: written from the files of a run folder only."""
