"""rosbag2 files (sqlite3 and mcap) read and written with `rosbags` (no rosbag2 on PyPI).

Messages are built and (de)serialised with rosbags' own typestore (ROS 2 Humble definitions,
identical for the types used here across Humble, Jazzy and Kilted), so bags written here play
in ``ros2 bag play`` and bags recorded on a vehicle read here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np
import numpy.typing as npt
from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from seg_perception.errors import BagError, ImageError
from seg_perception.io.bag_files import BagReader, storage_identifier
from seg_perception.io.compressed import CompressedImageMessage, decode_compressed, encode_compressed
from seg_perception.io.image import DecodedImage, ImageMessage, decode_image
from seg_perception.io.image_encode import encode_image

if TYPE_CHECKING:
    from rosbags.interfaces import Connection

TYPESTORE = get_typestore(Stores.ROS2_HUMBLE)
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
STRING = "std_msgs/msg/String"
CLOCK = "rosgraph_msgs/msg/Clock"
DETECTIONS = "vision_msgs/msg/Detection2DArray"
IMAGE_TYPES = (IMAGE, COMPRESSED)
STORAGES = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}

# vision_msgs (>= 4.0, Humble and later) is not in rosbags' typestores; its definitions are
# registered here so output bags carry instance/detections exactly as the nodes publish them.
_VISION_MSGS = {
    "vision_msgs/msg/Point2D": "float64 x\nfloat64 y",
    "vision_msgs/msg/Pose2D": "vision_msgs/Point2D position\nfloat64 theta",
    "vision_msgs/msg/BoundingBox2D": "vision_msgs/Pose2D center\nfloat64 size_x\nfloat64 size_y",
    "vision_msgs/msg/ObjectHypothesis": "string class_id\nfloat64 score",
    "vision_msgs/msg/ObjectHypothesisWithPose": "vision_msgs/ObjectHypothesis hypothesis\n"
    "geometry_msgs/PoseWithCovariance pose",
    "vision_msgs/msg/Detection2D": "std_msgs/Header header\nvision_msgs/ObjectHypothesisWithPose[] results\n"
    "vision_msgs/BoundingBox2D bbox\nstring id",
    "vision_msgs/msg/Detection2DArray": "std_msgs/Header header\nvision_msgs/Detection2D[] detections",
}
for _name, _text in _VISION_MSGS.items():
    TYPESTORE.register(get_types_from_msg(_text, _name))


class _Stamp(Protocol):
    sec: int
    nanosec: int


class MessageHeader(Protocol):
    """What is read of a ``std_msgs/Header`` (rosbags or rclpy message alike): its stamp."""

    stamp: _Stamp


class DetectedInstance(Protocol):
    """What :func:`detections_message` reads of an instance (the pipeline's InstanceRecord)."""

    # Read-only: the pipeline's records are frozen dataclasses.
    @property
    def value(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def score(self) -> float: ...


# Ground-truth topics of generated drives, under the camera namespace.
GT_LABEL_IDS = "gt/label_ids"  # mono8, Cityscapes label ids
GT_INSTANCE_IDS = "gt/instance_ids"  # mono16, Cityscapes instanceIds encoding
GT_CONDITION = "gt/condition"  # std_msgs/String: day, night, fog, ...


def header(stamp_ns: int, frame_id: str) -> Any:
    types = TYPESTORE.types
    return types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000),
        frame_id=frame_id,
    )


def stamp_ns(msg_header: MessageHeader) -> int:
    """Nanoseconds of a header's stamp (rosbags or rclpy message alike)."""
    return int(msg_header.stamp.sec) * 1_000_000_000 + int(msg_header.stamp.nanosec)


def image_message(pixels: npt.ArrayLike, encoding: str, stamp_ns: int, frame_id: str, *, msg_header: Any = None) -> Any:
    """A rosbags Image; ``msg_header`` (copied as is) takes precedence over stamp/frame_id."""
    height, width, step, data = encode_image(pixels, encoding)
    return TYPESTORE.types[IMAGE](
        header=msg_header if msg_header is not None else header(stamp_ns, frame_id),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=0,
        step=step,
        data=np.frombuffer(data, np.uint8),
    )


def compressed_message(rgb: npt.ArrayLike, fmt: str, stamp_ns: int, frame_id: str) -> Any:
    fmt_string, payload = encode_compressed(rgb, fmt)
    return TYPESTORE.types[COMPRESSED](
        header=header(stamp_ns, frame_id), format=fmt_string, data=np.frombuffer(payload, np.uint8)
    )


# -- reading ---------------------------------------------------------------------------------

# Topics under these path parts are ground truth or our own outputs, never camera input.
_NOT_CAMERA_PARTS = ("gt", "semantic", "instance", "panoptic")


def open_bag(path: str | Path) -> BagReader:
    """An open rosbags Reader (sqlite3 or mcap): a bag folder, with or without metadata.yaml
    (see io/bag_files.py), or one storage file; BagError with one readable line otherwise."""
    path = Path(path)
    if not path.exists():
        raise BagError(f"bag {path} does not exist")
    try:
        reader = BagReader(path)
        reader.open()
    except (ReaderError, OSError, ValueError, KeyError) as err:
        raise BagError(f"cannot open bag {path}: {err}") from err
    return reader


def storage_of(reader: Reader) -> str:
    """``mcap`` or ``sqlite3``: the storage of an open bag's files; ``""`` if unknown."""
    return storage_identifier(reader)


def camera_namespace(topic: str) -> str:
    """Namespace of a camera image topic: the topic minus ``/compressed`` and its last part
    (``/front/image_raw/compressed`` -> ``/front``); outputs go under it."""
    base = topic.removesuffix("/compressed")
    return base.rsplit("/", 1)[0]


def camera_connections(reader: Reader, topics: Sequence[str] = ()) -> list[Connection]:
    """Connections of the camera topics to replay: ``topics`` (checked), or the one image
    topic of the bag that is not ground truth or an output (ambiguity is an error)."""
    by_topic = {c.topic: c for c in reader.connections}
    if topics:
        chosen = []
        for topic in topics:
            conn = by_topic.get(topic)
            if conn is None:
                raise BagError(f"topic {topic} is not in the bag; image topics: {_image_topics(reader) or 'none'}")
            if conn.msgtype not in IMAGE_TYPES:
                raise BagError(f"topic {topic} is {conn.msgtype}; expected {' or '.join(IMAGE_TYPES)}")
            chosen.append(conn)
        return chosen
    candidates = all_camera_connections(reader)
    if len(candidates) > 1:
        raise BagError(
            f"several camera topics {sorted(c.topic for c in candidates)}: choose with --topic "
            "(repeat it for several cameras)"
        )
    return candidates


def all_camera_connections(reader: Reader) -> list[Connection]:
    """Every camera topic of the bag: image topics that are not ground truth or an output;
    BagError if there is none."""
    candidates = [
        c
        for c in reader.connections
        if c.msgtype in IMAGE_TYPES and not set(c.topic.split("/")) & set(_NOT_CAMERA_PARTS)
    ]
    if not candidates:
        topics = sorted(c.topic for c in reader.connections)
        raise BagError(f"no camera topic (sensor_msgs Image or CompressedImage) in the bag; topics: {topics or 'none'}")
    return candidates


def _image_topics(reader: Reader) -> list[str]:
    return sorted(c.topic for c in reader.connections if c.msgtype in IMAGE_TYPES)


def read_messages(
    reader: Reader, connections: Sequence[Connection], start: int | None = None, stop: int | None = None
) -> Iterator[tuple[Connection, int, bytes]]:
    """(connection, log time ns, raw CDR) in time order, log times in [start, stop) where
    given; a read fault becomes BagError."""
    it = reader.messages(connections=connections, start=start, stop=stop)
    while True:
        try:
            item = next(it)
        except StopIteration:
            return
        except Exception as err:
            # Broad on purpose: whatever rosbags' storage readers hit on a damaged file is a BagError.
            raise BagError(f"bag {reader.path} is damaged or truncated: {type(err).__name__}: {err}") from err
        yield item


def deserialize(raw: bytes, msgtype: str) -> Any:
    return TYPESTORE.deserialize_cdr(raw, msgtype)


def serialize(msg: Any, msgtype: str) -> bytes:
    return bytes(TYPESTORE.serialize_cdr(msg, msgtype))


def detections_message(
    msg_header: Any, instances: Sequence[DetectedInstance], boxes: Sequence[tuple[float, float, float, float]]
) -> Any:
    """instance/detections as the nodes publish it (see ros/detections.py), as a rosbags message:
    one Detection2D per instance, ``id`` = its instance_map value, class and score in results,
    ``boxes`` = (centre x, centre y, size x, size y) per instance (pipeline/detection_boxes.py)."""
    t = TYPESTORE.types
    geometry = t["geometry_msgs/msg/PoseWithCovariance"](
        pose=t["geometry_msgs/msg/Pose"](
            position=t["geometry_msgs/msg/Point"](x=0.0, y=0.0, z=0.0),
            orientation=t["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
        ),
        covariance=np.zeros(36, np.float64),
    )
    detections = []
    for inst, (cx, cy, sx, sy) in zip(instances, boxes, strict=True):
        centre = t["vision_msgs/msg/Pose2D"](position=t["vision_msgs/msg/Point2D"](x=cx, y=cy), theta=0.0)
        hypothesis = t["vision_msgs/msg/ObjectHypothesisWithPose"](
            hypothesis=t["vision_msgs/msg/ObjectHypothesis"](class_id=inst.name, score=float(inst.score)), pose=geometry
        )
        detections.append(
            t["vision_msgs/msg/Detection2D"](
                header=msg_header,
                results=[hypothesis],
                bbox=t["vision_msgs/msg/BoundingBox2D"](center=centre, size_x=sx, size_y=sy),
                id=str(inst.value),
            )
        )
    return t[DETECTIONS](header=msg_header, detections=detections)


def detection_scores(msg: Any) -> dict[int, float]:
    """{instance_map value: score} of a Detection2DArray (rosbags or rclpy message alike)."""
    return {int(d.id): float(d.results[0].hypothesis.score) for d in msg.detections if d.id and d.results}


def decode_frame(raw: bytes | memoryview, msgtype: str) -> tuple[Any, DecodedImage]:
    """Serialized (CDR) Image or CompressedImage -> (message, decoded frame). The pixels of
    raw formats are a view of ``raw``: no copy. Any fault is an ImageError."""
    try:
        msg = TYPESTORE.deserialize_cdr(raw, msgtype)
    except Exception as err:
        # Broad on purpose: rosbags' generated deserialisers fail on malformed CDR with any of several errors.
        raise ImageError(f"malformed {msgtype} message ({type(err).__name__}: {err})") from err
    # rosbags types a deserialised message as object; for these two types it is the message class.
    if msgtype == COMPRESSED:
        return msg, decode_compressed(cast("CompressedImageMessage", msg))
    return msg, decode_image(cast("ImageMessage", msg))
