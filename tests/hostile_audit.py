"""Run the hostile-input and fault suite again and count its cases by the audit's classes (issue 28).

  python tests/hostile_audit.py                  # the three files, one core, a table on stdout
  python tests/hostile_audit.py -m "not slow"    # extra arguments go to pytest

Each collected case is one hostile input or fault. What its test asserts gives the class it
shows when it passes: A, a one-line error naming the cause (and nothing lost); B, a correct
recovery (a resume, a rebuild, a value read back as written). A case whose test fails is C (an
A case: a traceback or an unclear line) or D (a B case: a wrong result or data lost); one that
runs past the time limit is E (a hang). Only `test_at_least_a_hundred_cases` is not a case.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = ["tests/test_hostile_inputs.py", "tests/test_reliability.py", "tests/test_library_inputs.py"]
NOT_A_CASE = {"test_at_least_a_hundred_cases"}

# Tests whose passing case is a correct recovery (B); every other test asserts a one-line error (A).
RECOVERY = {
    "test_non_finite_numbers_are_strict_json_and_read_back", "test_set_values_with_commas_are_joined",
    "test_a_score_set_cache_of_other_frames_or_digest_is_rebuilt", "test_a_metrics_record_cut_short_is_named_on_resume",
    "test_fault_limit_is_a_failure_and_the_rerun_resumes", "test_float64_beyond_float32_range_is_a_fault_never_buffered",
    "test_a_ctrl_c_waits_for_the_checkpoint_being_written", "test_sigkilled_trainer_leaves_no_worker_alive",
    "test_a_failed_job_of_the_side_lane_stops_the_jobs_behind_it", "test_a_diverged_toy_run_writes_strict_json",
    "test_a_diverged_pinn_run_writes_strict_json", "test_a_full_disk_mid_run_is_one_line_and_the_rerun_finishes",
    "test_script_outage_exits_non_zero_and_the_same_command_resumes", "test_script_interrupted_is_one_line_and_resumes",
    "test_the_fused_divergence_rule_skips_steps_that_did_not_train", "test_divergence_rule",
    "test_feedback_arrays_are_checked_by_shape_only", "test_ogas_sizes_its_schedule_from_the_context",
    "test_run_experiment_takes_a_dict_and_refuses_other_types",
}
# Parametrised cases of a recovery test that assert a one-line error instead: metrics.jsonl damage.
DAMAGE_NAMED = ("garbage_mid_file", "cut_record_mid_file", "list_mid_file", "number_mid_file", "binary_lines",
                "binary_blob", "binary_after_records", "latin1_mid_file")


def passing_class(name: str) -> str:
    function, _, param = name.partition("[")
    if function == "test_metric_log_after_a_crash_or_damage":
        return "A" if param.split("-")[0].rstrip("]") in DAMAGE_NAMED else "B"
    return "B" if function in RECOVERY else "A"


def classify(junit: str) -> tuple[dict, list, float]:
    """``({class: count}, [(case, class, seconds)], total seconds)`` from a pytest JUnit file."""
    counts, rows, total = collections.Counter(), [], 0.0
    for case in ET.parse(junit).iter("testcase"):
        name = case.get("name")
        seconds = float(case.get("time", 0))
        total += seconds
        if name.partition("[")[0] in NOT_A_CASE:
            continue
        expected = passing_class(name)
        if case.find("skipped") is not None:
            kind = "skipped"
        elif case.find("failure") is not None or case.find("error") is not None:
            text = (case.find("failure") if case.find("failure") is not None else case.find("error")).get("message", "")
            kind = "E" if "Timeout" in text or "timed out" in text else ("C" if expected == "A" else "D")
        else:
            kind = expected
        counts[kind] += 1
        rows.append((f"{case.get('classname')}::{name}", kind, seconds))
    return counts, rows, total


def main(argv) -> int:
    files = [f for f in FILES if os.path.exists(os.path.join(ROOT, f))]
    with tempfile.TemporaryDirectory() as tmp:
        junit = os.path.join(tmp, "junit.xml")
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", f"--junitxml={junit}", *files, *argv],
                       cwd=ROOT, check=False)
        counts, rows, total = classify(junit)
    for case, kind, _ in rows:
        if kind not in ("A", "B"):
            print(f"{kind}  {case}")
    print(f"\n{sum(counts.values())} hostile inputs and faults in {', '.join(files)}; test time {total:.0f} s")
    print("| class | count |\n|---|---|")
    for kind, label in (("A", "a clear one-line error"), ("B", "a correct recovery"), ("C", "a traceback or unclear"),
                        ("D", "a silent wrong result or data loss"), ("E", "a hang"), ("skipped", "skipped here")):
        print(f"| {kind}: {label} | {counts.get(kind, 0)} |")
    return 0 if not any(counts.get(k) for k in "CDE") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
