"""The report step reads only the run folder's files; data strings are escaped in HTML."""
import json

from experiments.report.writer import write_report
from shared.export import QUERY_NAMES


def _run_folder(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    env = {
        "started_utc": "2026-11-25 10:00:00",
        "machine": {"platform": "Linux", "processor": "x86_64", "cpus": 2, "memory_gib": 24.0},
        "spark_master": "local[2]",
        "versions": {"pyspark": "4.2.0"},
        "profile": {"name": "quick", "rows": 100, "repeats": 2, "seed": 7},
        "source": "files",
        "input": "/data/<script>alert(1)</script>",
        "settings": {"window_seconds": 3600},
    }
    (run / "environment.json").write_text(json.dumps(env))
    (run / "timings.csv").write_text(
        "run_id,profile,repeat,build,seconds,raw_lines,master,source\n"
        + "".join(f"r,quick,{rep},{b},{s},101,local[2],files\n"
                  for rep, s in ((1, 10.0), (2, 14.0)) for b in ("oracle", "kappa", "lambda", "dstream")))
    accounting = {"raw_lines": 101, "valid_lines": 90, "quarantined_lines": 11, "balanced": True,
                  "quarantine": {"blank": 1, "header": 10}}
    comparisons = [{"query": q, "build": b, "status": "identical", "detail": ""}
                   for q in QUERY_NAMES for b in ("kappa", "lambda", "dstream")]
    comparisons[0] = {"query": QUERY_NAMES[0], "build": "kappa", "status": "DIFFERS", "detail": "1 <row> differs"}
    for repeat in (1, 2):
        (run / f"equivalence-{repeat}.json").write_text(json.dumps({
            "comparisons": comparisons, "ok": False,
            "accounting": {b: accounting for b in ("oracle", "kappa", "lambda", "dstream")}}))
    return run


def test_report_has_tables_charts_and_escapes_html(tmp_path):
    run = _run_folder(tmp_path)
    report = write_report(run)
    markdown = report.read_text()
    html = (run / "report.html").read_text()
    assert "| city_revenue | DIFFERS (1 <row> differs) | identical | identical |" in markdown
    assert "<script>" not in html and "&lt;script&gt;" in html and "1 &lt;row&gt; differs" in html
    assert (run / "processing_time.png").stat().st_size > 1000
    assert "processing_time.png" in html
    # median of 10 and 14 is 12, spread 10-14
    assert "| kappa | 2 | 12.0 | 10.0 | 14.0 |" in markdown
    assert "MISMATCHES" in markdown


def test_report_shows_verify_warnings_about_the_input(tmp_path):
    run = _run_folder(tmp_path)
    last = json.loads((run / "equivalence-2.json").read_text())
    last["warnings"] = ["input files are not in event-time order: 3 of 8 valid lines (37.5%) ..."]
    (run / "equivalence-2.json").write_text(json.dumps(last))
    markdown = write_report(run).read_text()
    assert "Warning: input files are not in event-time order: 3 of 8 valid lines (37.5%)" in markdown
