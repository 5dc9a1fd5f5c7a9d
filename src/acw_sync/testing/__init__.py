"""Test helpers for connector authors: the conformance suite every connector passes.

Usage, in a connector's test module::

    from acw_sync.testing import ConnectorConformance, ConnectorHarness

    class TestMyCrm(ConnectorConformance):
        @pytest.fixture
        def harness(self, tmp_path):
            return MyCrmHarness(tmp_path)   # a ConnectorHarness for your CRM (emulator)
"""

from acw_sync.testing.conformance import (
    ConnectorConformance,
    ConnectorHarness,
    Fault,
    sample_call,
    sample_followup,
)

__all__ = ["ConnectorConformance", "ConnectorHarness", "Fault", "sample_call", "sample_followup"]
