"""The raw Redis pub/sub row of metric_latency.py: timestamped messages published on the
console's embedded Redis (channel "bench") at a fixed pace, for the bench to receive.

    python bench/scripts/publisher.py REDIS_SOCKET COUNT PAUSE_SECONDS

Publishes COUNT messages {"n": n, "sent": wall-clock time}, PAUSE_SECONDS apart; prints nothing.
"""

import json
import sys
import time

import redis


def main() -> None:
    client = redis.Redis(unix_socket_path=sys.argv[1])
    for n in range(int(sys.argv[2])):
        client.publish("bench", json.dumps({"n": n, "sent": time.time()}))
        time.sleep(float(sys.argv[3]))


if __name__ == "__main__":
    main()
