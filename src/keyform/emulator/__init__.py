"""keyform's built-in emulator of the Questra and TextQL key APIs (SPEC §8).

Standalone like stripe-mock: standard library only, imports nothing else from keyform.

    with Emulator(EmulatorConfig(port=0)) as emu:
        httpx.get(emu.url + "/_emulator/state")
"""

from .config import EmulatorConfig
from .server import Emulator

__all__ = ["Emulator", "EmulatorConfig"]
