"""keyform's own test support, shared by `tests/` and `bench/` (not shipped in the wheel: keyform's
plug-in authors get `keyform.testing` instead).

- `harness.project`    — `Project`, a keyform project driven through the real CLI (in-process or as
                          subprocesses), and the one set of constants (org, tokens, timeouts).
- `harness.emulator`   — `EmulatorProcess`, the emulator in a child process.
- `harness.generator`  — `ManifestSpec` and its random mutations.
- `harness.invariants` — the invariants a converged apply keeps (issue 6).
- `harness.crash`      — the kill -9 trial runner (`run_trials`) of tests/test_crash.py and bench/crash.py.
- `harness.workspaces` — the two-workspace trials of tests/test_recovery_owned.py and bench/two_workspaces.py.

The emulator's control API is `keyform.emulator.client.EmulatorControl`.
"""
