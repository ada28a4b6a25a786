"""Tests of the harness's bookkeeping: parsing, medians, ratios, failures, the report.

Standard library only: `python3 -m unittest discover -s bench/peers -p 'test_*.py'`.
The commands run here are tiny Python one-liners standing in for a benchmark program.
"""
import json
import os
import statistics
import sys
import tempfile
import textwrap
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _peer  # noqa: E402
import harness  # noqa: E402
from _plan import Case, Ctx, Run  # noqa: E402


def line(seconds, count=10, warmup=False, case="c", rep=1, phases=None, unit="task"):
    return json.dumps({"workload": "W", "case": case, "system": "s", "size": count,
                       "count": count, "unit": unit, "rep": rep, "warmup": warmup,
                       "seconds": seconds, "phases": phases or {}, "info": {}})


def result(stdout, rc=0, timed_out=False, stderr=""):
    return {"rc": rc, "stdout": stdout, "stderr": stderr, "timed_out": timed_out,
            "wall": 1.0, "foreign_cpu": 0.0}


def run(system="sys", size=10, onebox=False, select=None, reps=3):
    return Run(system, ["x"], size, onebox, 10.0, reps, "", select)


def python_cmd(code):
    return [sys.executable, "-c", textwrap.dedent(code)]


class ParseAndSummarize(unittest.TestCase):
    def test_medians_leave_out_warmups_and_other_lines(self):
        out = "\n".join(["noise", line(9.0, warmup=True), line(1.0), line(3.0), line(2.0),
                         line(float("nan")), '{"seconds": null}',
                         json.dumps({"versions": {"dask": "1"}}), "{not json"])
        row = harness.summarize(run(), result(out))
        self.assertEqual(row["status"], "ok")
        self.assertEqual((row["median"], row["min"], row["max"], row["n"]), (2.0, 1.0, 3.0, 3))
        self.assertAlmostEqual(row["per_unit"], 0.2)
        self.assertEqual(row["warmup_seconds"], [9.0])
        self.assertEqual(row["versions"], {"dask": "1"})

    def test_phase_medians(self):
        out = "\n".join(line(t, phases={"build": b}) for t, b in [(1, 5), (2, 7), (3, 6)])
        row = harness.summarize(run(), result(out))
        self.assertEqual(row["phases"], {"build": 6})

    def test_select_keeps_one_case(self):
        out = "\n".join([line(1.0, case="cold"), line(5.0, case="warm"), line(3.0, case="cold")])
        row = harness.summarize(run(select="warm"), result(out))
        self.assertEqual((row["median"], row["n"]), (5.0, 1))

    def test_no_timed_repetition_is_a_failure(self):
        row = harness.summarize(run(), result(line(1.0, warmup=True)))
        self.assertEqual(row["status"], "failed")
        empty = harness.summarize(run(), result(""))
        self.assertEqual(empty["status"], "failed")
        self.assertIn("no timed", empty["problem"])

    def test_exit_code_and_stderr_tail_are_reported(self):
        row = harness.summarize(run(), result("", rc=3, stderr="Traceback\nKeyError: 'x'\n"))
        self.assertEqual(row["status"], "failed")
        self.assertIn("exit code 3", row["problem"])
        self.assertIn("KeyError", row["problem"])

    def test_timeout_with_some_repetitions_is_partial(self):
        row = harness.summarize(run(reps=3), result(line(2.0), rc=-9, timed_out=True))
        self.assertEqual(row["status"], "partial")
        self.assertEqual(row["median"], 2.0)
        self.assertIn("timed out", harness._notes(row))
        self.assertIn("1 of 3 reps", harness._notes(row))


class Ratios(unittest.TestCase):
    def rows(self, specs):
        rows = []
        for onebox, size, per_unit in specs:
            r = {"onebox": onebox, "size": size, "status": "ok", "per_unit": per_unit}
            rows.append(r)
        return harness.add_ratios(rows)

    def test_same_size_is_preferred(self):
        rows = self.rows([(True, 100, 1.0), (True, 10, 2.0), (False, 10, 50.0)])
        self.assertEqual(rows[2]["ratio"], 25.0)
        self.assertIsNone(rows[2]["ratio_size"])
        self.assertIsNone(rows[0]["ratio"])

    def test_nearest_size_otherwise(self):
        rows = self.rows([(True, 100_000, 1.0), (True, 1_000, 4.0), (False, 5_000, 40.0)])
        # 5,000 is nearer 1,000 than 100,000 on a log scale
        self.assertEqual(rows[2]["ratio"], 10.0)
        self.assertEqual(rows[2]["ratio_size"], 1_000)

    def test_no_ratio_without_onebox(self):
        rows = self.rows([(False, 10, 3.0)])
        self.assertIsNone(rows[0]["ratio"])
        failed = harness.add_ratios([
            {"onebox": True, "size": 10, "status": "failed"},
            {"onebox": False, "size": 10, "status": "ok", "per_unit": 1.0}])
        self.assertIsNone(failed[1]["ratio"])


class Execute(unittest.TestCase):
    def test_output_and_exit_code(self):
        res = harness.execute(python_cmd("""
            import sys
            print('{"seconds": 1.5, "count": 1}')
            print("oops", file=sys.stderr)
            sys.exit(4)
        """), timeout=30)
        self.assertEqual(res["rc"], 4)
        self.assertFalse(res["timed_out"])
        self.assertIn("1.5", res["stdout"])
        self.assertIn("oops", res["stderr"])

    def test_timeout_kills_the_group_and_keeps_lines(self):
        # The command starts a grandchild that would hold the machine for a minute.
        t0 = time.monotonic()
        res = harness.execute(python_cmd("""
            import subprocess, sys, time
            subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
            print('{"seconds": 0.25, "count": 1}', flush=True)
            time.sleep(60)
        """), timeout=2)
        self.assertTrue(res["timed_out"])
        self.assertLess(time.monotonic() - t0, 30)
        recs, _ = harness.parse_lines(res["stdout"])
        self.assertEqual([r["seconds"] for r in recs], [0.25])

    def test_missing_program_is_a_failed_row(self):
        res = harness.execute(["/nonexistent/peers-program"], timeout=5)
        row = harness.summarize(run(), res)
        self.assertEqual(row["status"], "failed")


class Report(unittest.TestCase):
    def report(self):
        ok = harness.summarize(run("onebox thing", 10, True), result(line(0.001)))
        peer = harness.summarize(run("peer thing", 10), result(line(0.1)))
        bad = harness.summarize(run("broken peer", 10), result("", rc=1, stderr="boom"))
        rows = harness.add_ratios([ok, peer, bad])
        return {"machine": {"cpu_model": "Test CPU", "cpus": 2, "memory_bytes": 2**30,
                            "os": "TestOS", "python": "3", "gpus": []},
                "loadavg_start": [0.1, 0.2, 0.3], "loadavg_end": [1.0, 1.0, 1.0],
                "versions": {"dask": "9"}, "started": "a", "ended": "b", "command": "c",
                "onebox_rev": "r", "threads": 2,
                "cases": [{"workload": "W9", "title": "test", "unit": "task", "rows": rows}]}

    def test_render_has_machine_rows_ratio_and_failure(self):
        text = harness.render(self.report())
        self.assertTrue(text.startswith(harness.BEGIN) and text.endswith(harness.END))
        self.assertIn("Test CPU", text)
        self.assertIn("1.0 GiB", text)
        self.assertIn("0.1 / 0.2 / 0.3", text)
        self.assertIn("| 100× |", text)
        self.assertIn("**failed**", text)
        self.assertIn("boom", text)

    def test_write_benchmarks_creates_then_replaces_between_markers(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "BENCHMARKS.md")
            machine = harness.machine_line(self.report()["machine"])
            harness.write_benchmarks(path, f"{harness.BEGIN}\nFIRSTBLOCK\n{harness.END}",
                                     machine)
            with open(path, encoding="utf-8") as f:
                first = f.read()
            self.assertIn("# Benchmarks", first)
            self.assertIn("Test CPU, 2 cores, 1.0 GiB, no GPU (TestOS)", first)
            with open(path, "a", encoding="utf-8") as f:
                f.write("\n## Other section\nkept\n")
            harness.write_benchmarks(path, f"{harness.BEGIN}\nSECONDBLOCK\n{harness.END}")
            with open(path, encoding="utf-8") as f:
                second = f.read()
            self.assertIn("SECONDBLOCK", second)
            self.assertNotIn("FIRSTBLOCK", second)
            self.assertIn("kept", second)
            self.assertEqual(second.count(harness.BEGIN), 1)

    def test_formats(self):
        self.assertEqual(harness.fmt_time(2.5e-6), "2.50 µs")
        self.assertEqual(harness.fmt_time(0.0123), "12.3 ms")
        self.assertEqual(harness.fmt_time(42.0), "42.0 s")
        self.assertEqual(harness.fmt_per_unit(4e-7, "task"), "400 ns/task")
        self.assertEqual(harness.fmt_per_unit(2.2e-3, "task"), "2,200 µs/task")
        self.assertEqual(harness.fmt_per_unit(1 / 284.0, "MB"), "284 MB/s")
        self.assertEqual(harness.fmt_ratio(1234.4), "1,234×")
        self.assertEqual(harness.fmt_ratio(0.5), "0.50×")


class Plans(unittest.TestCase):
    def ctx(self, quick):
        return Ctx("/bin/peers", sys.executable, quick=quick)

    def test_every_case_has_onebox_and_a_peer(self):
        for quick in (False, True):
            for name in harness.WORKLOADS:
                for case in __import__(name).plan(self.ctx(quick)):
                    self.assertIsInstance(case, Case)
                    self.assertTrue(any(r.onebox for r in case.runs), case.workload)
                    self.assertTrue(any(not r.onebox for r in case.runs), case.workload)

    def test_peer_cases_exist_in_their_scripts(self):
        for name in harness.WORKLOADS:
            mod = __import__(name)
            for case in mod.plan(self.ctx(False)):
                for r in case.runs:
                    if not r.onebox:
                        known = list(mod.CASES) + list(getattr(mod, "RUNNERS", {}))
                        self.assertIn(r.argv[2], known, f"{name}: {r.argv}")

    def test_w4_runs_one_command_per_system_and_selects_its_case(self):
        import w4_arrays
        cases = w4_arrays.plan(self.ctx(False))
        self.assertEqual([c.workload for c in cases],
                         ["W4 bandwidth", "W4 bandwidth", "W4a", "W4b", "W4b'", "W4c"])
        commands = {}
        for case in cases:
            for r in case.runs:
                self.assertIsNotNone(r.select, case.workload)
                commands.setdefault(r.system, set()).add(tuple(r.argv))
        self.assertTrue(all(len(c) == 1 for c in commands.values()), commands)
        self.assertEqual([r.select for r in cases[-1].runs], ["c", "c", "c"])

    def test_only_selects_by_prefix(self):
        cases = [Case("W1a", "", "task"), Case("W1d", "", "item"), Case("W2 cold", "", "c")]
        pick = harness.select_cases
        self.assertEqual([c.workload for c in pick(cases, "W1")], ["W1a", "W1d"])
        self.assertEqual([c.workload for c in pick(cases, "w2,W1d")], ["W1d", "W2 cold"])
        self.assertEqual(pick(cases, ""), cases)

    def test_shown_args_drop_the_program(self):
        self.assertEqual(harness.shown_args(["--onebox-bin", "/x", "--quick"]), ["--quick"])


class WordCountCorpus(unittest.TestCase):
    def test_ordered_sorts_by_count_then_word(self):
        import w3_wordcount as w3
        self.assertEqual(w3.ordered([("b", 2), ("c", 5), ("a", 2)]),
                         [["c", 5], ["a", 2], ["b", 2]])

    def test_manifest_top_is_the_texts_word_count(self):
        try:
            import numpy  # noqa: F401
        except ImportError:
            self.skipTest("numpy is not installed")
        import w3_wordcount as w3
        from collections import Counter
        with tempfile.TemporaryDirectory() as d:
            m = w3.generate(d, 2)
            files = w3.files_of(d)
            self.assertEqual(len(files), w3.NFILES)
            c = Counter()
            total = 0
            for fn in files:
                with open(fn, encoding="ascii") as f:
                    text = f.read()
                total += len(text)
                self.assertTrue(text.endswith("\n"))
                c.update(text.split())
            self.assertEqual(w3.ordered(c.items())[:w3.TOP], m["top"])
            self.assertLessEqual(total, 2_000_000)
            self.assertGreater(total, 1_900_000)
            self.assertEqual(sum(m["files"].values()), total)


class PeerLoop(unittest.TestCase):
    def test_run_case_prints_warmup_then_timed_repetitions(self):
        seen = []

        def fake(n, threads):
            seen.append(n)
            return dict(system="fake", count=n, unit="item", seconds=float(n),
                        phases={}, info={})

        import contextlib
        import io
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            _peer.run_case("W0", {"fake": fake},
                           ["fake", "100", "--reps", "2", "--warmup", "1", "--warmup-size", "7"])
        recs, _ = harness.parse_lines(buf.getvalue())
        self.assertEqual(seen, [7, 100, 100])
        self.assertEqual([(r["warmup"], r["rep"], r["size"]) for r in recs],
                         [(True, 1, 7), (False, 1, 100), (False, 2, 100)])
        row = harness.summarize(run(size=100, reps=2), result(buf.getvalue()))
        self.assertEqual(row["median"], statistics.median([100.0, 100.0]))

    def test_check_raises_on_a_wrong_result(self):
        with self.assertRaises(AssertionError):
            _peer.check(False, "wrong")
        _peer.check(True, "fine")


if __name__ == "__main__":
    unittest.main()
