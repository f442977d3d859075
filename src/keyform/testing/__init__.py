"""keyform.testing: the provider conformance kit (a pytest plugin shipped with keyform).

A provider author points it at a provider type and a running server:

    from keyform.testing import ConformanceTarget, ProviderConformance

    class TestMyProvider(ProviderConformance):
        @pytest.fixture
        def conformance_target(self, my_server) -> ConformanceTarget:
            return ConformanceTarget(provider_type="mytype", base_url=my_server.url, token="t0k-...",
                                     rejected_token="wrong", key_fields=lambda name: {"name": name},
                                     faults=MyServerFaults(my_server))

Every `test_*` of `ProviderConformance` then runs against that server. See docs/providers.md.
"""

from keyform.testing.conformance import CANARY, ConformanceTarget, ProviderConformance, ServerFaults

__all__ = ["CANARY", "ConformanceTarget", "ProviderConformance", "ServerFaults"]
