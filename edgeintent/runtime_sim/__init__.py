"""Device profiles, emulated devices and runners per runtime (see ``emulation.py`` for cpu-arm)."""
