"""Run a script many times, each in its own process, without paying the imports each time.

``python tests/fork_runner.py SCRIPT JOBS.json RESULTS.json [PARALLEL]``: the parent imports
jax, flax and qsal_jax once (no JAX backend is started, so forking is safe), then forks one
child per job. A child is a fresh process as far as the script can tell: its own argv, working
directory, stdout/stderr files and flag registry; it runs SCRIPT as ``__main__`` and its exit
status is the job's return code. JOBS is a list of ``{"argv": [...], "cwd": dir, "out": prefix}``;
RESULTS gets ``[{"returncode": int}, ...]`` with the output in ``<out>.stdout`` / ``<out>.stderr``.
"""

import json
import os
import runpy
import sys


def _child(script, job):
    os.chdir(job["cwd"])
    for fd, suffix in ((1, ".stdout"), (2, ".stderr")):
        f = os.open(job["out"] + suffix, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(f, fd)
        os.close(f)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    sys.argv = [script, *job["argv"]]
    code = 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as e:
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
            code = 1
        else:
            code = int(e.code or 0)
    except BaseException:  # an uncaught exception: print it as the interpreter would
        import traceback

        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(script, jobs_path, results_path, parallel=2):
    import jax  # noqa: F401  (imported once, backend not started)

    import qsal_jax.experiments.online  # noqa: F401

    with open(jobs_path) as f:
        jobs = json.load(f)
    codes, running, queue = {}, {}, list(enumerate(jobs))
    while queue or running:
        while queue and len(running) < parallel:
            i, job = queue.pop(0)
            pid = os.fork()
            if pid == 0:
                _child(script, job)
            running[pid] = i
        pid, status = os.wait()
        codes[running.pop(pid)] = os.waitstatus_to_exitcode(status)
    with open(results_path, "w") as f:
        json.dump([{"returncode": codes[i]} for i in range(len(jobs))], f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 2)
