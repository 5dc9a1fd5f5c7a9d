"""``python -m acw_sync`` is the ``acw-sync`` command."""

from acw_sync.cli import main

main()
