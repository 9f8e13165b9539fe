"""Shared test settings: deterministic, single-threaded torch so that timings do not fight; the
``slow`` marker for the tests ``make test-fast`` skips."""

import re
import warnings
from pathlib import Path

import pytest
import torch

#: Tests marked ``slow`` here, by function name (so the rule survives moving a test to another file):
#: the torchrun runs (2 gloo processes each), the kill-and-resume runs (a subprocess killed with
#: SIGKILL, then rerun), long training (the paper bench profile end to end).  Seconds measured on a
#: shared 2-core machine.  Tests that are slow for their own reasons say so with
#: ``@pytest.mark.slow`` in their file (e.g. tests/test_readme.py).
SLOW_TESTS = {
    # torchrun
    "test_two_processes_fail_named_resume_per_shard_and_match_one": 73,  # cli/test_images_distributed
    "test_two_processes_match_one": 15,  # training/test_loop_ddp (was test_train_ddp)
    "test_failing_rank_is_named_and_only_rank0_writes": 14,  # training/test_loop_ddp
    "test_two_gloo_processes_match_one": 12,  # runtime/test_distributed
    "test_a_failing_rank_is_named_on_every_rank": 5,  # runtime/test_distributed
    "test_two_torchrun_processes_give_the_single_process_rows": 10,  # cli/test_estimate_resume
    # kill and resume
    "test_estimate_killed_with_sigkill_resumes_to_identical_csv": 14,  # cli/test_kill_resume
    "test_train_killed_with_sigkill_resumes_to_identical_weights": 7,  # cli/test_kill_resume
    # long training
    "test_paper_profile_runs_end_to_end_on_cpu": 118,  # bench/test_profiles
    "test_defaults_read_curved_data_nobody_tuned_for": 20,  # test_sklearn (1,000 training steps)
}
TESTS = Path(__file__).parent


@pytest.fixture(autouse=True, scope="session")
def _torch_threads():
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    yield


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of tiny tensors or small models (threads only add overhead on a
    shared machine); a module opts in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if getattr(item, "originalname", item.name) in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)


def pytest_collection_finish(session):
    """Warn when a name in ``SLOW_TESTS`` is no longer defined under tests/ (renamed or removed), so
    that the list does not silently stop marking a slow test."""
    defined = set()
    for f in TESTS.rglob("test_*.py"):
        defined.update(re.findall(r"^\s*def (test_\w+)\(", f.read_text(encoding="utf-8"), re.MULTILINE))
    stale = sorted(set(SLOW_TESTS) - defined)
    if stale:
        warnings.warn(pytest.PytestWarning(f"tests/conftest.py SLOW_TESTS names no test: {stale}"),
                      stacklevel=1)
