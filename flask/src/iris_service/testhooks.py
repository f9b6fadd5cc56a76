"""Test-only fault injection, honoured only when ``IRIS_TEST_HOOKS=1``.

Nothing in build.sh, the images or the settings' defaults turns it on, so in
service these are ordinary (if odd) measurements. The fault tests need a job
that is still running when they kill its process, and one that kills its
worker every time it runs (a poison job).
"""

from __future__ import annotations

import os
import time

from celery import Task
from celery.utils.log import get_task_logger

from .config import Settings

logger = get_task_logger(__name__)

SLOW_JOB_SEPAL_LENGTH = 99.25
POISON_JOB_SEPAL_LENGTH = 99.75


def inject_fault(task: Task, settings: Settings, sepal_length: float) -> None:
    """Kill the worker process or stall, when the measurements ask for it."""
    if sepal_length == POISON_JOB_SEPAL_LENGTH:
        logger.warning("test hook: job %s kills its worker process", task.request.id)
        os._exit(70)
    if sepal_length == SLOW_JOB_SEPAL_LENGTH:
        # The pid lets a test kill exactly the pool process that runs this job.
        meta = {"stage": "test delay", "progress": 0.5, "pid": os.getpid()}
        task.update_state(state="PROGRESS", meta=meta)
        time.sleep(settings.test_task_delay_seconds)


# Training jobs (training_jobs.py): a random forest with one of these
# n_estimators stalls after its second fold, or kills its worker process
# between writing its artifact and registering it, on its first attempt only.
SLOW_TRAINING_N_ESTIMATORS = 13
KILL_BEFORE_REGISTERING_N_ESTIMATORS = 17


def training_fold_hook(task: Task, settings: Settings, n_estimators: object, fold: int) -> None:
    if n_estimators == SLOW_TRAINING_N_ESTIMATORS and fold == 2:
        logger.warning("test hook: training job %s stalls after fold 2", task.request.id)
        time.sleep(settings.test_task_delay_seconds)


def training_register_hook(task: Task, n_estimators: object, attempt: int) -> None:
    if n_estimators == KILL_BEFORE_REGISTERING_N_ESTIMATORS and attempt == 1:
        logger.warning("test hook: training job %s kills its worker process", task.request.id)
        os._exit(70)


# Batches (batch_jobs.py): a batch whose first row has this sepal_length kills
# its worker process after its first chunk, on its first attempt only.
KILL_MID_BATCH_SEPAL_LENGTH = 99.5


def batch_chunk_hook(task: Task, first_sepal_length: float, chunk: int, attempt: int) -> None:
    if first_sepal_length == KILL_MID_BATCH_SEPAL_LENGTH and chunk == 1 and attempt == 1:
        logger.warning("test hook: batch job %s kills its worker process", task.request.id)
        os._exit(70)
