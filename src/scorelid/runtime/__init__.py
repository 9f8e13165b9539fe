"""What long jobs need around the numbers: atomic and streaming file io (``io``), one-run-per-directory
locks (``lock``), torchrun process groups and chunked resumable work (``distributed``), SIGTERM as an
interruption (``signals``), and numerical / memory guards (``guards``).

Nothing is imported here, so that ``import scorelid`` stays light; import the module you need.
"""
