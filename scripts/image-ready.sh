#!/bin/sh
# Readiness check of the test image (copied to /bin/ready): succeeds once every
# SERVE_TCP port listens and every SERVE_UDP port is bound.
for port in ${SERVE_TCP-80}; do
  hex=$(printf '%04X' "$port")
  grep -Eq "^ *[0-9]+: [0-9A-F]+:$hex [0-9A-F]+:0000 0A" /proc/net/tcp /proc/net/tcp6 || exit 1
done
for port in ${SERVE_UDP-53}; do
  hex=$(printf '%04X' "$port")
  grep -Eq "^ *[0-9]+: [0-9A-F]+:$hex " /proc/net/udp || exit 1
done
exit 0
