"""Loaded into the bench's worker (`celery worker --include bench.followups_probe`): writes
each task's name, process CPU seconds and number of ids to BENCH_TASK_CPU_LOG, so
bench/followups.py can tell the follow-ups' CPU from the comment analysis's and the rest.

It also sends what the worker's tasks enqueue (the response event's receivers run in the
worker) to the bench's own queue, BENCH_QUEUE, the only one this worker consumes."""

import os
import time

from celery.signals import task_postrun, task_prerun

from nps_platform.celery import app

LOG = os.environ.get("BENCH_TASK_CPU_LOG", "")
if os.environ.get("BENCH_QUEUE"):
    app.conf.task_default_queue = os.environ["BENCH_QUEUE"]
_started: dict[str, float] = {}


@task_prerun.connect(weak=False)
def _before(task_id=None, **kwargs):
    _started[task_id] = time.process_time()


@task_postrun.connect(weak=False)
def _after(task_id=None, task=None, args=None, **kwargs):
    cpu = time.process_time() - _started.pop(task_id, time.process_time())
    ids = next((len(a) for a in (args or ())[1:] if isinstance(a, list)), 0)
    if LOG:
        with open(LOG, "a") as log:  # one short line per task: appends do not interleave
            log.write(f"{task.name}\t{cpu:.6f}\t{ids}\n")
