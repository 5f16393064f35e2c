"""One worker per GPU: each `gpu` worker knows how many training processes it can host, a job of N
processes waits in queue `gpu.N` for a worker that can, and says so while none has reported that
many; `manage.py up --gpu-workers N` splits the host's GPUs (or CPU cores) among N workers."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from celery.exceptions import TimeoutError as CeleryTimeout
from celery.utils.nodenames import host_format, worker_direct
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from jobs.actions import enqueue, refuse_beyond_capacity, resume, waiting_reason
from jobs.models import Job
from rftconsole.capacity import (
    capacity_of,
    cuda_visible_devices,
    startup_capacity,
    worker_cores,
)
from rftconsole.celery import GPU_QUEUE, app, gpu_queue_for
from rftconsole.management.commands.up import celery_worker_argv, said_since_start
from rftconsole.models import WorkerReport
from rftconsole.processes.gpu_workers import plan_gpu_workers, split_devices, unused_devices
from rftconsole.processes.supervisor import Child, Supervisor
from rftconsole.system import SystemStatus
from rftconsole.tasks import report_worker
from tests.support.job_rows import make_job
from tests.support.processes import embedded_env, free_port, manage, wait_until
from tests.support.stack import child_env

# --- capacity and the split of a host among workers (pure functions) ---


def test_a_worker_hosts_one_process_per_gpu_or_per_core_without_gpus_at_most_64() -> None:
    assert capacity_of(gpus=4, cores=96) == 4
    assert capacity_of(gpus=0, cores=16) == 16
    assert capacity_of(gpus=0, cores=256) == 64
    assert capacity_of(gpus=0, cores=None) == 1


def test_cuda_visible_devices_are_counted_as_cuda_counts_them() -> None:
    assert cuda_visible_devices("0,1,2") == ["0", "1", "2"]
    assert cuda_visible_devices("GPU-aa, GPU-bb") == ["GPU-aa", "GPU-bb"]
    assert cuda_visible_devices("") == []
    assert cuda_visible_devices("-1") == []
    assert cuda_visible_devices("0,-1,2") == ["0"]  # CUDA stops at the first invalid entry


def test_gpus_are_split_into_contiguous_chunks_one_per_worker() -> None:
    assert split_devices(["0", "1", "2", "3"], 2) == [["0", "1"], ["2", "3"]]
    assert split_devices(["0", "1", "2", "3", "4"], 2) == [["0", "1"], ["2", "3"]]
    assert unused_devices(2, ["0", "1", "2", "3", "4"]) == ["4"]
    assert split_devices(["0", "1", "2"], 3) == [["0"], ["1"], ["2"]]
    with pytest.raises(ValueError, match="cannot split 2 devices among 3 workers"):
        split_devices(["0", "1"], 3)


def test_one_gpu_worker_keeps_its_names_and_every_device() -> None:
    (plan,) = plan_gpu_workers(1, ["0", "1"], cores=8, environ={})
    assert (plan.name, plan.node, plan.log, plan.env) == (
        "gpu-worker",
        "gpu@%h",
        "worker-gpu.log",
        {},
    )


def test_several_gpu_workers_each_get_their_own_gpus() -> None:
    plans = plan_gpu_workers(2, ["4", "5", "6", "7"], cores=8, environ={})
    assert [(p.name, p.node) for p in plans] == [
        ("gpu-worker-1", "gpu-1@%h"),
        ("gpu-worker-2", "gpu-2@%h"),
    ]
    assert [p.env for p in plans] == [
        {"CUDA_VISIBLE_DEVICES": "4,5"},
        {"CUDA_VISIBLE_DEVICES": "6,7"},
    ]


def test_several_cpu_gpu_workers_share_the_cores_without_oversubscribing_them() -> None:
    plans = plan_gpu_workers(3, [], cores=8, environ={})
    assert [p.env for p in plans] == [{"RFT_WORKER_CORES": "2", "OMP_NUM_THREADS": "2"}] * 3
    assert plans[0].describe == "queue 'gpu', concurrency 1, CPU, 2 threads"
    assert plan_gpu_workers(4, [], cores=2, environ={})[0].env == {
        "RFT_WORKER_CORES": "1",
        "OMP_NUM_THREADS": "1",
    }
    # A thread count the operator chose is kept; the share of cores still bounds the capacity.
    assert plan_gpu_workers(2, [], cores=8, environ={"OMP_NUM_THREADS": "3"})[0].env == {
        "RFT_WORKER_CORES": "4"
    }


def test_a_cpu_gpu_worker_offers_only_its_share_of_the_cores() -> None:
    cores = os.cpu_count() or 1
    assert worker_cores({}) == cores  # one worker: every core (the control)
    assert worker_cores({"RFT_WORKER_CORES": "3"}) == 3
    for nonsense in ("0", "-2", "many", ""):
        assert worker_cores({"RFT_WORKER_CORES": nonsense}) == cores
    shares = [int(plan.env["RFT_WORKER_CORES"]) for plan in plan_gpu_workers(2, [], 16, {})]
    assert [capacity_of(gpus=0, cores=share) for share in shares] == [8, 8]


@pytest.mark.django_db
def test_manage_py_status_lists_the_queues_of_multi_process_jobs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    workers = {
        "gpu": ["gpu-1@a", "gpu-2@a"],
        "default": ["default@a"],
        "gpu.10": ["gpu-2@a"],
        "gpu.2": ["gpu-1@a", "gpu-2@a"],
        "gpu-1@a.dq2": ["gpu-1@a"],  # a worker's own queue is not a queue of jobs
    }
    status = SystemStatus(True, "embedded Redis answers", workers, [], None, None)
    assert status.queues == ("gpu", "default", "gpu.2", "gpu.10")
    assert SystemStatus(True, "", {"gpu": ["g@a"]}, [], None, None).queues == ("gpu", "default")
    monkeypatch.setattr("rftconsole.management.commands.status.system_status", lambda: status)
    out = io.StringIO()
    call_command("status", stdout=out)
    assert "gpu.2    ok  gpu-1@a, gpu-2@a" in out.getvalue()
    assert "gpu.10   ok  gpu-2@a" in out.getvalue()
    assert "dq2" not in out.getvalue()


def test_up_refuses_a_gpu_worker_count_that_does_not_fit_before_starting_anything() -> None:
    with pytest.raises(ValueError, match="needs at least 3 GPUs, but this host has 2"):
        plan_gpu_workers(3, ["0", "1"], cores=8, environ={})
    assert len(plan_gpu_workers(2, ["0", "1"], cores=8, environ={})) == 2  # control
    for count in ("0", "65"):
        with pytest.raises(CommandError, match=f"between 1 and 64 \\(got {count}\\)"):
            call_command("up", "--gpu-workers", count, stdout=io.StringIO())


# --- routing and the waiting reason ---


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """The tasks handed to the broker (the outside edge), with their queue."""
    sent: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(
        "rftconsole.queue.app.send_task", lambda name, **kw: sent.append((name, kw))
    )
    return sent


def report(hostname: str, processes: int, queue: str = GPU_QUEUE) -> WorkerReport:
    return WorkerReport.objects.create(
        hostname=hostname,
        queue=queue,
        pid=1,
        torch_version="2",
        accelerator="cpu",
        processes=processes,
        reported_at=timezone.now(),
    )


def test_a_one_process_job_goes_to_gpu_and_a_three_process_job_to_gpu_3(
    alice: User, sent: list[tuple[str, dict[str, Any]]], django_capture_on_commit_callbacks: Any
) -> None:
    single = make_job(alice, "single")
    triple = make_job(alice, "triple", hp={"numProcesses": 3})
    with django_capture_on_commit_callbacks(execute=True):
        enqueue(single)
        enqueue(triple)
    assert sent == [
        ("jobs.train_job", {"args": [single.pk], "queue": "gpu"}),
        ("jobs.train_job", {"args": [triple.pk], "queue": "gpu.3"}),
    ]
    assert gpu_queue_for(1) == GPU_QUEUE and gpu_queue_for(64) == "gpu.64"


def test_a_job_no_worker_can_host_says_what_it_waits_for(
    alice: User, sent: list[tuple[str, dict[str, Any]]]
) -> None:
    job = make_job(alice, hp={"numProcesses": 4})
    enqueue(job)
    job.refresh_from_db()
    expected = "Waiting for a gpu worker that can run 4 processes (no gpu worker has reported yet)."
    assert (job.status, job.status_reason) == (Job.Status.QUEUED, expected)
    assert job.events.filter(message=expected).exists()

    report("gpu-1@a", 2)
    report("default@a", 64, queue="default")  # not a gpu worker: does not count
    paused = make_job(alice, "paused", hp={"numProcesses": 4}, status=Job.Status.PAUSED)
    resume(paused)  # re-queued
    paused.refresh_from_db()
    assert (
        paused.status_reason
        == "Waiting for a gpu worker that can run 4 processes (the largest reports 2)."
    )


def test_a_job_a_reported_worker_can_host_does_not_wait(
    alice: User, sent: list[tuple[str, dict[str, Any]]], django_capture_on_commit_callbacks: Any
) -> None:
    report("gpu-1@a", 2)
    report("gpu-2@a", 4)
    job = make_job(alice, hp={"numProcesses": 4})
    with django_capture_on_commit_callbacks(execute=True):
        enqueue(job)
    job.refresh_from_db()
    assert job.status_reason == "" and not job.events.filter(message__startswith="Waiting").exists()
    assert waiting_reason(1) == ""  # any gpu worker runs a one-process job
    assert sent == [("jobs.train_job", {"args": [job.pk], "queue": "gpu.4"})]


def test_a_worker_fails_a_claimed_job_that_needs_more_processes_than_it_hosts(alice: User) -> None:
    fits = make_job(alice, "fits", hp={"numProcesses": 2}, worker="gpu@a")
    assert refuse_beyond_capacity(fits, 2) is False  # control
    fits.refresh_from_db()
    assert fits.status == Job.Status.QUEUED

    too_big = make_job(alice, "too-big", hp={"numProcesses": 8}, worker="gpu@a")
    assert refuse_beyond_capacity(too_big, 2) is True
    too_big.refresh_from_db()
    assert too_big.status == Job.Status.FAILED
    assert too_big.status_reason == (
        "numProcesses is 8 but worker gpu@a can host only 2 training processes "
        "(its CUDA devices, or CPU cores without CUDA)."
    )


# --- real workers ---


def purge(queue: str) -> None:
    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge(queue)


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_a_gpu_worker_records_its_capacity_and_consumes_the_queues_it_can_host(
    live_stack: Supervisor,
) -> None:
    capacity = startup_capacity()
    assert capacity >= 2, "this test needs a host with 2 cores or GPUs"
    result = report_worker.apply_async(args=[GPU_QUEUE], queue=gpu_queue_for(2)).get(timeout=60)
    assert result["hostname"].startswith("gpu-test-")
    assert result["processes"] == capacity
    assert WorkerReport.objects.get(hostname=result["hostname"]).processes == capacity
    # Its own queue reaches it too (`up` checks each gpu worker through it).
    direct = worker_direct(result["hostname"])
    assert report_worker.apply_async(args=[GPU_QUEUE], queue=direct).get(timeout=60)["pid"]

    beyond = gpu_queue_for(capacity + 1)
    waiting = report_worker.apply_async(args=[GPU_QUEUE], queue=beyond)
    try:
        with pytest.raises(CeleryTimeout):
            waiting.get(timeout=5)
    finally:
        purge(beyond)
    # The default worker never takes training: a report on `default` says it hosts one process.
    assert (
        report_worker.apply_async(args=["default"], queue="default").get(timeout=60)["processes"]
        == 1
    )


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_a_gpu_worker_reports_its_capacity_by_itself_when_it_starts(
    live_stack: Supervisor, tmp_path: Path
) -> None:
    """Workers on other hosts are not started by `up`, which sends each a report to check it:
    they report themselves, so a queued job can tell whether any of them could run it."""
    argv = celery_worker_argv(GPU_QUEUE, 1, f"gpu-self-{os.getpid()}@%h")
    supervisor = Supervisor(child_env())
    worker = Child("gpu-self", argv, tmp_path / "gpu-self.log", lambda: False)
    worker.is_ready = lambda: said_since_start(worker, b" ready.")
    try:
        supervisor.start(worker, 120)
        hostname = host_format(f"gpu-self-{os.getpid()}@%h")
        wait_until(lambda: WorkerReport.objects.filter(hostname=hostname).exists(), 60, "report")
        assert WorkerReport.objects.get(hostname=hostname).processes == startup_capacity()
    finally:
        supervisor.stop_all(grace_seconds=10)


@pytest.mark.stack
@pytest.mark.usefixtures("starter_artifacts")
def test_up_starts_two_gpu_workers_that_share_the_cores(tmp_path: Path) -> None:
    port, env = free_port(), embedded_env(tmp_path / "var")
    env["CUDA_VISIBLE_DEVICES"] = ""  # the CPU path, on any host
    env.pop("OMP_NUM_THREADS", None)
    log_path = tmp_path / "up.log"
    log = log_path.open("w+")
    started = time.monotonic()
    argv = manage("up", "--port", str(port), "--gpu-workers", "2")
    up = subprocess.Popen(argv, env=env, stdout=log, stderr=log)
    try:
        wait_until(lambda: "RFT Console is ready" in log_path.read_text(), 240, "all processes")
        status = subprocess.run(
            manage("status", "--json", "--wait", "60"), env=env, capture_output=True, text=True
        )
        assert status.returncode == 0, status.stdout + status.stderr
        answer = json.loads(status.stdout)
        nodes = sorted(node.split("@")[0] for node in answer["queues"]["gpu"])
        assert nodes == ["gpu-1", "gpu-2"]
        # Each worker takes jobs of up to its share of the cores (gpu.2 … gpu.<share>): on 2
        # cores none, where one worker alone would take gpu.2.
        threads = str(max(1, (os.cpu_count() or 1) // 2))
        sized = [queue for queue in answer["queues"] if queue.startswith("gpu.")]
        assert sized == [f"gpu.{n}" for n in range(2, int(threads) + 1)]
        names = {p["name"]: p for p in answer["processes"]}
        assert {"gpu-worker-1", "gpu-worker-2"} <= names.keys() and "gpu-worker" not in names
        for name in ("gpu-worker-1", "gpu-worker-2"):
            environ = Path(f"/proc/{names[name]['pid']}/environ").read_bytes().split(b"\0")
            assert f"OMP_NUM_THREADS={threads}".encode() in environ
            assert (
                f"✓ {name} queue 'gpu', concurrency 1, CPU, {threads} threads"
                in log_path.read_text()
            )
        print(f"up --gpu-workers 2 ready after {time.monotonic() - started:.0f} s")
    finally:
        up.send_signal(signal.SIGINT)
        returncode = up.wait(timeout=60)
    assert returncode == 0, log_path.read_text()
