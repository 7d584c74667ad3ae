"""Long-running processes allow themselves as many open files as the operator lets them."""

from __future__ import annotations

import resource
import subprocess
import sys

from brenia.process import open_files_raise


def test_the_soft_open_files_limit_is_raised_to_the_hard_one() -> None:
    # In a child: the limit is process-wide and this one's tests should not change it.
    code = ("import resource; resource.setrlimit(resource.RLIMIT_NOFILE, (256, "
            "resource.getrlimit(resource.RLIMIT_NOFILE)[1]));"
            "from brenia.process import open_files_raise; print(open_files_raise(), "
            "*resource.getrlimit(resource.RLIMIT_NOFILE))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    raised, soft, hard = (int(v) for v in out)
    assert raised == soft == hard > 256


def test_a_limit_already_at_its_hard_value_stays() -> None:
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    open_files_raise()
    after = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert after[1] == before[1] and after[0] >= before[0]
