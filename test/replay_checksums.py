"""Checksums of a replay: proof that a restructuring changed no behaviour.

Generates a drive with the command line (``synth --bag``), replays it through both models
(``replay``: class, instance and panoptic maps, overlays too) and prints one SHA-256 per
output topic over every message's pixel data in order, plus one over the generated bag's
camera frames. Run it on two checkouts and compare the lines::

    python test/replay_checksums.py --cli "python -m seg_perception.apps.cli" --out /tmp/check_new
    (cd OLD_CHECKOUT && python /path/to/replay_checksums.py --cli "python -m seg_perception.cli" --out /tmp/check_old)

Only the command line (a contract) and rosbags are used, so the script runs unchanged on a
checkout from before and after a move of modules.
"""

from __future__ import annotations

import argparse
import hashlib
import shlex
import subprocess
import sys
from pathlib import Path

from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore


def topic_digests(bag: Path) -> dict[str, tuple[int, str]]:
    """{topic: (messages, sha256 of their ``data`` fields, in log order)} of Image-like topics."""
    digests: dict[str, hashlib._Hash] = {}
    counts: dict[str, int] = {}
    with AnyReader([bag], default_typestore=get_typestore(Stores.ROS2_JAZZY)) as reader:
        for connection, _, raw in reader.messages():
            if connection.msgtype not in ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"):
                continue
            msg = reader.deserialize(raw, connection.msgtype)
            digest = digests.setdefault(connection.topic, hashlib.sha256())
            digest.update(bytes(msg.data))
            counts[connection.topic] = counts.get(connection.topic, 0) + 1
    return {topic: (counts[topic], digests[topic].hexdigest()) for topic in sorted(digests)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cli", default="seg-perception", help="how to call the command line")
    parser.add_argument("--out", type=Path, required=True, help="scratch folder (created)")
    parser.add_argument("--frames", type=int, default=6)
    args = parser.parse_args()
    cli = shlex.split(args.cli)
    args.out.mkdir(parents=True, exist_ok=True)
    drive, replayed = args.out / "drive", args.out / "replayed"
    if not drive.exists():
        subprocess.run(
            [
                *cli,
                "synth",
                "--out",
                str(args.out / "synth"),
                "--frames",
                str(args.frames),
                "--seed",
                "11",
                "--width",
                "1024",
                "--height",
                "512",
                "--bag",
                str(drive),
            ],
            check=True,
        )
    if replayed.exists():
        sys.exit(f"{replayed} exists: use a fresh --out")
    subprocess.run(
        [*cli, "replay", str(drive), "--out", str(replayed), "--overlays", "--confidence", "--no-progress"], check=True
    )
    for name, bag in (("input", drive), ("output", replayed)):
        for topic, (count, digest) in topic_digests(bag).items():
            print(f"{name} {topic} {count} {digest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
