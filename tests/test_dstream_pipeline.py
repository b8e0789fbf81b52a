"""The legacy DStream logic as DStream -> DStream functions, fed by queueStream
(the way pyspark's own streaming tests do it), and the parser's fast paths."""

import datetime as dt
import random
import threading
from decimal import Decimal

from legacy_dstream import parsing
from legacy_dstream import pipeline as P
from shared.catalogue import GROUPED_SUMS
from shared.settings import UNCATALOGUED, WorkloadSettings

LINES = [
    "Order ID,Product,Quantity Ordered,Price Each,Order Date,Purchase Address",
    '1,iPhone,1,700,04/19/19 08:46,"1 A St, Portland, OR 97035"',
    '2,AA Batteries (4-pack),3,3.84,04/19/19 09:10,"2 B St, Portland, ME 04101"',
    ",,,,,",
]
MORE = ['2,AA Batteries (4-pack),3,3.84,04/19/19 09:10,"2 B St, Portland, ME 04101"', "1,x,two,1,04/19/19 09:10,oops"]
# a third batch over several partitions, with a line in two windows' overlap and an uncatalogued product
THIRD = [
    '3,iPhone,2,700.00,04/20/19 10:40,"3 C St, Dallas, TX 75001"',
    '4,Widget,1,2.5,04/20/19 10:59,"4 D St, Dallas, TX 75001"',
    '5,iPhone,1,700,04/21/19 00:00,"5 E St, Portland, OR 97035"',
    '6,"Cable ""XL""",1,1,04/21/19 00:01,"6 F St, Portland, ME 04101"',
    "Order ID,Product,Quantity Ordered,Price Each,Order Date,Purchase Address",
]
CATALOGUE = {"iPhone": ("Phones", Decimal("600.00")), "AA Batteries (4-pack)": ("Batteries", Decimal("2.00"))}
SETTINGS = WorkloadSettings()


def _run(spark, checkpoint, build, batches, partitions=1):
    """Feed one queued RDD per batch through `build`; returns what each batch emitted (the
    running state after each batch)."""
    return _run_many(spark, checkpoint, {"only": build}, batches, partitions)["only"]


class _Keeper:
    """What each batch emitted, kept on the driver. A foreachRDD function is pickled into the
    streaming checkpoint at every batch (from another thread): the rows and the condition are
    live state, left out of the pickle."""

    def __init__(self):
        self.rows, self.arrived = [], threading.Condition()

    def __getstate__(self):
        return {}

    def __setstate__(self, _state):
        self.__init__()

    def keep(self, _time, rdd):
        rows = sorted(rdd.collect(), key=repr)
        with self.arrived:
            self.rows.append(rows)
            self.arrived.notify_all()

    def wait_for(self, count, timeout):
        with self.arrived:
            return self.arrived.wait_for(lambda: len(self.rows) >= count, timeout)


def _run_many(spark, checkpoint, builds, batches, partitions=1):
    """Like _run for several DStream functions of one stream in one context: name -> what
    each batch emitted. Waits for the batches without polling."""
    from pyspark.streaming import StreamingContext

    ssc = StreamingContext(spark.sparkContext, 0.5)
    ssc.checkpoint(str(checkpoint))  # updateStateByKey needs one
    keepers = {name: _Keeper() for name in builds}
    stream = ssc.queueStream([spark.sparkContext.parallelize(b, partitions) for b in batches], oneAtATime=True)
    for name, build in builds.items():
        build(stream).foreachRDD(keepers[name].keep)
    ssc.start()
    try:
        for name, keeper in keepers.items():
            assert keeper.wait_for(len(batches), timeout=120), (name, keeper.rows)
    finally:
        ssc.stop(stopSparkContext=False, stopGraceFully=False)
    return {name: keeper.rows[: len(batches)] for name, keeper in keepers.items()}


def test_running_totals_keep_the_two_portlands_apart(spark, tmp_path):
    seen = _run(spark, tmp_path, lambda s: P.grouped_sum(P.order_lines(P.parse(s)), "city_revenue"), [LINES, MORE])
    assert seen[0] == [(("Portland", "ME"), (Decimal("11.52"), 1)), (("Portland", "OR"), (Decimal("700.00"), 1))]
    assert seen[1] == [(("Portland", "ME"), (Decimal("23.04"), 2)), (("Portland", "OR"), (Decimal("700.00"), 1))]


def test_accounting_counts_every_line(spark, tmp_path):
    seen = _run(spark, tmp_path, lambda s: P.line_accounting(P.parse(s)), [LINES, MORE])
    assert dict(seen[1]) == {"valid": (3,), "header": (1,), "blank": (1,), "bad_quantity": (1,)}


def test_one_state_for_every_query_gives_each_query_its_own_totals(spark, tmp_path):
    """all_totals (per-partition sums, one updateStateByKey keyed by (query, key)) read back
    with query_totals equals each query's own running totals, batch after batch."""
    queries = (
        "city_revenue",
        "daily_revenue",
        "product_sales",
        "hourly_sales",
        "window_revenue",
        "category_revenue",
        "city_revenue_v1",
    )
    batches = [LINES, MORE, THIRD]
    combined = _run(
        spark, tmp_path / "all", lambda s: P.all_totals(P.parse(s), queries, SETTINGS, CATALOGUE), batches, partitions=3
    )
    single = {
        **{query: (lambda lines, q=query: P.grouped_sum(lines, q)) for query in GROUPED_SUMS},
        "window_revenue": lambda lines: P.window_revenue(lines, SETTINGS),
        "category_revenue": lambda lines: P.category_revenue(lines, CATALOGUE),
    }
    alone = _run_many(
        spark,
        tmp_path / "single",
        {query: (lambda s, f=function: f(P.order_lines(P.parse(s)))) for query, function in single.items()},
        batches,
    )
    for query in single:
        for batch, state in enumerate(combined):
            mine = sorted(((key, value) for (name, key), value in state if name == query), key=repr)
            assert mine == alone[query][batch], (query, batch)
    accounting = {key: value for (name, key), value in combined[-1] if name == P.LINE_ACCOUNTING}
    assert accounting == {"valid": (7,), "header": (2,), "blank": (1,), "bad_quantity": (1,)}
    last = {(name, key): value for (name, key), value in combined[-1]}
    assert last[("category_revenue", UNCATALOGUED)] == (Decimal("3.50"), Decimal("0.00"))
    assert last[("category_revenue", "Phones")] == (Decimal("2800.00"), Decimal("400.00"))
    assert last[("window_revenue", (dt.datetime(2019, 4, 20, 10, 30), dt.datetime(2019, 4, 20, 11, 30)))] == (
        Decimal("1402.50"),
        2,
    )


def test_query_totals_reads_one_query_out_of_the_shared_state(spark, tmp_path):
    seen = _run(
        spark,
        tmp_path,
        lambda s: P.query_totals(P.all_totals(P.parse(s), ("city_revenue_v1",)), "city_revenue_v1"),
        [LINES, MORE],
    )
    assert seen[1] == [("Portland", (Decimal("723.04"),))]


def test_event_time_windows_by_hand():
    windows = P.event_time_windows(dt.datetime(2019, 4, 19, 8, 30), SETTINGS)
    assert windows == [
        (dt.datetime(2019, 4, 19, 8, 0), dt.datetime(2019, 4, 19, 9, 0)),
        (dt.datetime(2019, 4, 19, 8, 30), dt.datetime(2019, 4, 19, 9, 30)),
    ]


def test_window_pairs_reuse_each_slide_s_windows_exactly():
    """window_pairs keeps one list of windows per slide: the same windows as computing them
    line by line, for default and odd settings alike."""
    rng = random.Random(5)
    for settings in (
        SETTINGS,
        WorkloadSettings(window_seconds=900, slide_seconds=300),
        WorkloadSettings(window_seconds=7, slide_seconds=7),
    ):
        pairs = P.window_pairs(settings)
        for _ in range(2000):
            ts = dt.datetime(2019, 1, 1) + dt.timedelta(minutes=rng.randrange(0, 60 * 24 * 10))
            line = parsing.OrderLine("1", "p", 1, Decimal("2.00"), Decimal("2.00"), ts, "s", "c", "ST", "00000")
            assert pairs(line) == [(w, (Decimal("2.00"), 1)) for w in P.event_time_windows(ts, settings)]


def _split_by_characters(line):
    """The original split: one character at a time (docs/data-rules.md)."""
    fields, current, in_quotes = [], [], False
    for char in line:
        if char == '"':
            in_quotes = not in_quotes
        if char == "," and not in_quotes:
            fields.append("".join(current))
            current = []
        else:
            current.append(char)
    fields.append("".join(current))
    return [parsing._unwrap(f).strip(" ") for f in fields]


def test_split_fields_and_the_simple_line_shortcut_agree_with_the_character_walk():
    rng = random.Random(11)
    pieces = ['"', ",", " ", "a", "1", '""', "\ufeff", ".", "/", ":", ", ", '"x, y"', "04/19/19 08:46"]
    lines = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 12))) for _ in range(20000)]
    # six fields, the last one quoted, as nearly every real line is: the regex shortcut
    field = lambda: "".join(rng.choice(["a", " ", "1", ".", "", '"', ","]) for _ in range(rng.randint(0, 3)))
    lines += [",".join(field() for _ in range(5)) + ',"' + field() + '"' for _ in range(20000)]
    lines += ['176558,USB-C Charging Cable,2,11.95,04/19/19 08:46,"917 1st St, Dallas, TX 75001"']
    for line in lines:
        assert parsing.split_fields(line) == _split_by_characters(line), line
        simple = parsing._SIMPLE_LINE.fullmatch(line)
        if simple:
            assert [f.strip(" ") for f in simple.groups()] == _split_by_characters(line), line


def test_parse_lines_is_parse_line_over_a_partition():
    lines = LINES + MORE + THIRD
    assert list(parsing.parse_lines(iter(lines))) == [parsing.parse_line(line) for line in lines]


def test_fulfilment_pairs_order_lines_with_shipments_that_come_before_or_after_them(spark, tmp_path):
    """The join keeps both sides in state: a shipment that arrives before its order line
    (order 7) pairs as surely as one that arrives after (order 1); a shipment later than
    the 72 h bound, or before the order, makes no pair."""
    from pyspark.streaming import StreamingContext

    sales = [[LINES[1]], [], ['7,iPhone,1,700,04/19/19 09:00,"7 G St, Dallas, TX 75001"']]
    shipments = [
        ["order_id,product,ship_time,carrier", "7,iPhone,2019-04-20 09:00:00,UPS"],
        ["1,iPhone,2019-04-20 08:46:30,UPS", "1,iPhone,2019-04-25 00:00:00,UPS", "1,iPhone,2019-04-19 08:00:00,UPS"],
        [],
    ]
    sc = spark.sparkContext
    ssc = StreamingContext(sc, 0.5)
    ssc.checkpoint(str(tmp_path))
    lines = ssc.queueStream([sc.parallelize(b, 1) for b in sales], oneAtATime=True)
    shipped = P.shipments(ssc.queueStream([sc.parallelize(b, 1) for b in shipments], oneAtATime=True))
    keeper = _Keeper()
    P.query_totals(P.all_totals(P.parse(lines), ["fulfilment"], SETTINGS, None, shipped), "fulfilment").foreachRDD(
        keeper.keep
    )
    ssc.start()
    try:
        assert keeper.wait_for(3, timeout=120), keeper.rows
    finally:
        ssc.stop(stopSparkContext=False, stopGraceFully=False)
    day = dt.date(2019, 4, 20)
    assert keeper.rows[:3] == [[], [(day, (1, 86_430))], [(day, (2, 86_430 + 86_400))]]
    assert P.export_row("fulfilment", day, (2, 172_830)) == {
        "ship_date": day,
        "shipped_lines": 2,
        "avg_hours_to_ship": Decimal("24.00"),
    }


def test_a_batch_of_many_shipments_files_is_parsed_in_the_default_parallelism_and_keeps_every_shipment(spark, tmp_path):
    """textFileStream gives each file a partition, and a run's first batch holds every
    shipments file at once (hundreds): the parse runs over the context's default parallelism,
    not one Python task per file, and no shipment is lost in the packing."""
    files = 40
    shipped = [f"{order},iPhone,2019-04-20 09:00:00,UPS" for order in range(files * 3)]
    emitted = _run_many(
        spark,
        tmp_path,
        {
            "shipments": P.shipments,
            "partitions": lambda stream: P.shipments(stream).transform(
                lambda rdd: rdd.context.parallelize([rdd.getNumPartitions()], 1)
            ),
        },
        [shipped],
        partitions=files,
    )
    assert emitted["partitions"] == [[spark.sparkContext.defaultParallelism]]
    assert spark.sparkContext.defaultParallelism < files
    assert sorted(int(s.order_id) for s in emitted["shipments"][0]) == list(range(files * 3))


def test_a_bad_shipment_line_is_an_error_not_a_quarantine():
    import pytest

    assert parsing.parse_shipment("\ufefforder_id,product,ship_time,carrier") is None
    with pytest.raises(parsing.BadShipmentLine, match="not a real"):
        parsing.parse_shipment("1,iPhone,2019-02-30 10:00:00,UPS")
    with pytest.raises(parsing.BadShipmentLine, match="not a shipment line"):
        parsing.parse_shipment("1,iPhone")
