"""Peak-memory and time meter (CPU: sampled RSS above the phase's start, completed by ru_maxrss)."""

import subprocess
import sys

from scorelid.bench.meter import measure

# In a fresh interpreter the allocation sets a new high-water mark, so the measured peak cannot be
# missed even when the sampling thread is starved of CPU on a loaded machine.
_CHILD = """
import time, numpy as np
from scorelid.bench.meter import measure
def phase():
    a = np.ones(256 * 2**20 // 8)  # 256 MiB, pages touched
    time.sleep(0.02)
    return float(a[-1])
m = measure(phase)
print(m.value, m.seconds, m.peak_mem_bytes)
"""


def test_sees_a_short_lived_allocation():
    out = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, check=True).stdout
    value, seconds, peak = out.split()
    assert float(value) == 1.0 and float(seconds) >= 0.02
    assert 240 * 2**20 <= int(peak) <= 400 * 2**20


def test_small_phase_small_peak():
    m = measure(lambda: sum(range(1000)))
    assert m.value == 499500 and m.peak_mem_bytes < 16 * 2**20
