"""acw-sync: automatic After Call Work between telephony platforms and CRMs.

The public surface is the canonical model (:mod:`acw_sync.model`), the connector contract
(:mod:`acw_sync.connector`), the provider contract (:mod:`acw_sync.provider`) and the error
tree (:mod:`acw_sync.errors`). Everything else is internal.
"""

__version__ = "0.1.0"
