"""CIRCMAN5.0 device simulators: one PV-module line model behind an OPC UA PLC, Modbus devices
and an MQTT MES, with fault injection. See ``simulators/README.md``.

Importing the package loads nothing heavy; the entry points are :mod:`simulators.bench`
(``SimulatorBench``), :mod:`simulators.cli` (``circman5-sim``) and the modules per server.
"""
