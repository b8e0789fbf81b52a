"""shared/streaming.py: a micro-batch kept for the several jobs a foreachBatch runs over it."""

from shared.cleaning import classify_lines
from shared.streaming import kept_batch

GOOD = '176558,USB-C Charging Cable,2,11.95,04/19/19 08:46,"917 1st St, Dallas, TX 75001"'
BAD = '1,iPhone,two,700,04/19/19 08:46,"1 A St, Dallas, TX 75001"'


def test_a_kept_batch_has_every_row_behind_a_plan_of_one_leaf(spark):
    raw = spark.createDataFrame([(GOOD, "a.csv"), (BAD, "a.csv"), (GOOD, "b.csv")], "value string, source_file string")
    classified = classify_lines(raw)
    kept = kept_batch(classified)

    assert sorted(map(tuple, kept.collect())) == sorted(map(tuple, classified.collect()))
    assert kept.columns == classified.columns
    # what the frames built on it are analysed against: no parse expression left in it
    # (a persisted batch keeps its whole plan, and every select and union analyses it again)
    kept_plan, parse_plan = (frame._jdf.queryExecution().analyzed() for frame in (kept, classified))
    assert kept_plan.children().isEmpty() and not parse_plan.children().isEmpty()
    assert "Project" in parse_plan.toString() and "Project" not in kept_plan.toString()
