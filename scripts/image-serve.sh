#!/bin/sh
# Entry point of the test image (copied to /bin/serve; busybox sh).
# Serves HTTP on each port in SERVE_TCP and answers every UDP datagram on each
# port in SERVE_UDP with the container's hostname, so a probe from outside
# knows the datagram really reached the container. Exits on SIGTERM at once
# (a PID 1 without a handler ignores it and makes every stop wait).
hostname >/www/index.html
printf '#!/bin/sh\nread -r _\nhostname\n' >/bin/udp-answer
chmod 755 /bin/udp-answer
for port in ${SERVE_TCP-80}; do
  httpd -f -p "$port" -h /www &
done
for port in ${SERVE_UDP-53}; do
  # The answer reads the datagram first: exiting unread makes socat drop the reply.
  socat -T 2 UDP4-RECVFROM:"$port",fork EXEC:/bin/udp-answer &
  socat -T 2 UDP6-RECVFROM:"$port",fork,ipv6only=1 EXEC:/bin/udp-answer 2>/dev/null &
done
trap 'kill $(jobs -p) 2>/dev/null; exit 0' TERM INT
while true; do
  wait
  sleep 1
done
