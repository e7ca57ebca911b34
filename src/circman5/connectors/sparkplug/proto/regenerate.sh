#!/bin/sh
# Regenerate sparkplug_b_pb2.py/.pyi, the Python classes of the official Sparkplug B payload
# definition (Eclipse Tahu sparkplug_b.proto, Sparkplug 3.0, package org.eclipse.tahu.protobuf).
#
# Input: sparkplug_b.desc, that .proto as a compiled FileDescriptorSet (taken from the generated
# module pysparkplug 0.6.1 ships: `pip download --no-deps pysparkplug==0.6.1`, then
# `FileDescriptorSet(file=[module.DESCRIPTOR.CopyToProto(...)])`).
# Tool: protoc from grpcio-tools (PyPI), whose protobuf major.minor must not be newer than the
# protobuf runtime pinned in constraints.txt (the generated module checks it at import).
#
#   python -m venv /tmp/gen && /tmp/gen/bin/pip install grpcio-tools==1.85.4
#   sh src/circman5/connectors/sparkplug/proto/regenerate.sh /tmp/gen/bin/python
set -eu
PYTHON=${1:-python}
cd "$(dirname "$0")"
"$PYTHON" -m grpc_tools.protoc --descriptor_set_in=sparkplug_b.desc \
    --python_out=. --pyi_out=. sparkplug_b.proto
