"""The legacy DStream logic as DStream -> DStream functions, fed by queueStream
(the way pyspark's own streaming tests do it)."""
import time
from decimal import Decimal

from legacy_dstream import pipeline as P
from shared.settings import WorkloadSettings

LINES = [
    "Order ID,Product,Quantity Ordered,Price Each,Order Date,Purchase Address",
    '1,iPhone,1,700,04/19/19 08:46,"1 A St, Portland, OR 97035"',
    '2,AA Batteries (4-pack),3,3.84,04/19/19 09:10,"2 B St, Portland, ME 04101"',
    ",,,,,",
]
MORE = ['2,AA Batteries (4-pack),3,3.84,04/19/19 09:10,"2 B St, Portland, ME 04101"', "1,x,two,1,04/19/19 09:10,oops"]


def _run(spark, checkpoint, build, batches):
    """Feed one queued RDD per batch through `build`; returns what each batch emitted."""
    from pyspark.streaming import StreamingContext

    ssc = StreamingContext(spark.sparkContext, 0.5)
    ssc.checkpoint(str(checkpoint))  # updateStateByKey needs one
    seen = []
    stream = ssc.queueStream([spark.sparkContext.parallelize(b) for b in batches], oneAtATime=True)
    build(stream).foreachRDD(lambda rdd: seen.append(sorted(rdd.collect())))
    ssc.start()
    deadline = time.monotonic() + 60
    while len(seen) < len(batches) + 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    ssc.stop(stopSparkContext=False, stopGraceFully=False)
    return seen


def test_running_totals_keep_the_two_portlands_apart(spark, tmp_path):
    seen = _run(spark, tmp_path, lambda s: P.city_revenue(P.order_lines(P.parse(s))), [LINES, MORE])
    assert seen[0] == [(("Portland", "ME"), (Decimal("11.52"), 1)), (("Portland", "OR"), (Decimal("700.00"), 1))]
    assert seen[1] == [(("Portland", "ME"), (Decimal("23.04"), 2)), (("Portland", "OR"), (Decimal("700.00"), 1))]


def test_accounting_counts_every_line(spark, tmp_path):
    seen = _run(spark, tmp_path, lambda s: P.line_accounting(P.parse(s)), [LINES, MORE])
    assert dict(seen[1]) == {"valid": (3,), "header": (1,), "blank": (1,), "bad_quantity": (1,)}


def test_event_time_windows_by_hand():
    import datetime as dt

    windows = P.event_time_windows(dt.datetime(2019, 4, 19, 8, 30), WorkloadSettings())
    assert windows == [(dt.datetime(2019, 4, 19, 8, 0), dt.datetime(2019, 4, 19, 9, 0)),
                       (dt.datetime(2019, 4, 19, 8, 30), dt.datetime(2019, 4, 19, 9, 30))]
