"""engine/allocator.py: glibc keeps freed heap memory for reuse (what SemiPruneHook does on a CPU run)."""
import subprocess
import sys
import textwrap

import pytest

from mmsemiprune.engine import allocator

# allocate ~72 MB in six blocks, touch them, free them all, ten times: the soft step's pattern of (N,)-sized
# temporaries; prints the minor page faults of the last nine rounds
_CYCLES = textwrap.dedent('''
    import resource, sys
    import torch
    if sys.argv[1] == 'retain':
        from mmsemiprune.engine.allocator import retain_freed_memory
        print(retain_freed_memory())
    else:
        print('default')
    for r in range(10):
        if r == 1:
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        blocks = [torch.ones(3_000_000) for _ in range(6)]
        del blocks
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
''')


def _faults(mode, env):
    out = subprocess.run([sys.executable, '-c', _CYCLES, mode], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    what, faults = out.stdout.split()
    return what, int(faults)


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc mallopt: Linux only')
def test_retained_memory_is_not_faulted_back_each_round(monkeypatch):
    import os
    env = {k: v for k, v in os.environ.items() if not k.startswith('MALLOC_') and k not in ('LD_PRELOAD',
                                                                                              'MMSEMIPRUNE_MALLOC')}
    what, default = _faults('default', env)
    what_r, retained = _faults('retain', env)
    if what_r == 'not glibc':
        pytest.skip('the C library has no mallopt (not glibc)')
    assert what_r == 'applied'
    # glibc's defaults return the freed blocks to the system and fault them back in every round (~18,000 faults of
    # 4 KiB pages for 9 rounds of 72 MB); retained, they are reused
    assert default > 9 * 1000, default
    assert retained < default / 5, (retained, default)


def test_opt_outs_and_other_allocators_leave_malloc_alone(monkeypatch):
    monkeypatch.setattr(allocator, '_applied', None)
    monkeypatch.setenv('MMSEMIPRUNE_MALLOC', 'default')
    assert allocator.retain_freed_memory().startswith('opted out')
    monkeypatch.delenv('MMSEMIPRUNE_MALLOC')
    monkeypatch.setenv('MALLOC_TRIM_THRESHOLD_', '1000000')
    assert allocator.retain_freed_memory().startswith('user settings')
    monkeypatch.delenv('MALLOC_TRIM_THRESHOLD_')
    monkeypatch.setenv('LD_PRELOAD', '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2')
    assert allocator.retain_freed_memory().startswith('other allocator')
    assert allocator._applied is None  # nothing was set
