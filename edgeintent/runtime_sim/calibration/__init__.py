"""Calibration of the device profiles against published phone latencies.

- ``published.py`` the published fp32 one-thread latencies, each with its source (repo, file, commit, line)
- ``archs.py``     the public architectures those figures are for, built here (torch; random weights)
- ``fit.py``       fitting a profile's constant on the calibration rows and checking it on the others

``benchmarks/calibrate_devices.py`` runs all three; ``devices.py`` holds the fitted constants.
Importing this package imports nothing heavy (``archs`` imports torch).
"""
