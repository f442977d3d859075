"""Found by an adversarial pass (stop 36): `rate_limit` is documented for every provider instance (README "Rate limits"), and the rest
provider builds its HttpClient with `Limiter(config.name, config.rate_limit)` -- but a `type: rest`
provider cannot set it: the loader rejects the field as an unknown definition option. The rest
type is the only one with paginated lists, where a configured limit matters most."""

from __future__ import annotations

from pathlib import Path

from harness.project import Project

DEFINITION = Path("/work/main/examples/providers/questra.yaml")


def test_rest_provider_accepts_rate_limit(tmp_path: Path) -> None:
    project = Project(tmp_path, "http://127.0.0.1:9")
    project.write(f"""\
        version: 1
        providers:
          qp:
            type: rest
            definition: {DEFINITION}
            base_url: {{url}}
            token: {{env: QUESTRA_TOKEN}}
            org_id: org_x
            rate_limit: {{rate: 20/s, burst: 5}}
        sinks:
          env: {{type: dotenv, path: s.env}}
        defaults: {{sink: env}}
        keys:
          k0: {{provider: qp}}
        """)
    res = project.run("validate")
    assert res.exit_code == 0, res.output
    from keyform.manifest import load_workspace  # the limit reaches the provider's config
    ws = load_workspace([project.manifest])
    assert ws.providers["qp"].rate_limit is not None
