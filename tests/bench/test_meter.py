"""Peak-memory and time meter (CPU: sampled RSS above the phase's start, completed by ru_maxrss)."""

import subprocess
import sys

from scorelid.bench.meter import measure

# In a fresh interpreter each allocation sets a new high-water mark (64 MiB, then 256 MiB, each freed
# before the next), so ru_maxrss completes the sampled peak even when the sampling thread is starved
# of CPU on a loaded machine.  Only lower bounds are asserted: other load can add to RSS, never
# remove a buffer whose pages were touched.
_CHILD = """
import time, numpy as np
from scorelid.bench.meter import measure
def phase(mib):
    a = np.ones(mib * 2**20 // 8)  # pages touched
    time.sleep(0.02)
    return float(a[-1])
for mib in (64, 256):
    m = measure(lambda: phase(mib))
    print(m.value, m.seconds, m.peak_mem_bytes)
"""


def test_peak_grows_with_a_short_lived_allocation():
    out = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, check=True).stdout
    (v64, s64, p64), (v256, s256, p256) = (line.split() for line in out.strip().splitlines())
    assert float(v64) == float(v256) == 1.0 and min(float(s64), float(s256)) >= 0.02
    mib = 2**20
    # each buffer was freed when its phase returned: only a meter that saw it inside the phase counts it
    assert int(p64) >= 0.75 * 64 * mib and int(p256) >= 0.75 * 256 * mib, (p64, p256)
    assert int(p256) - int(p64) >= 0.5 * (256 - 64) * mib, (p64, p256)  # bigger buffer, bigger peak


def test_small_phase_small_peak():
    m = measure(lambda: sum(range(1000)))
    assert m.value == 499500 and m.peak_mem_bytes < 16 * 2**20
