"""An MCAP file read record by record, up to its last complete record.

A recorder killed mid-write leaves an MCAP file without summary and footer, possibly ending
inside a chunk. rosbags' reader needs the footer, so such a file is read here with the MCAP
project's own stream reader (``mcap`` on PyPI): schemas, channels and messages in file order,
stopping at the first record that is cut off or fails its CRC. What the recorder had not
finished writing (the open chunk) is lost; everything before it is read.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mcap.exceptions import EndOfFile, InvalidMagic
from mcap.records import Channel, Header, McapRecord, Message, Schema
from mcap.stream_reader import StreamReader
from rosbags.interfaces import Connection, ConnectionExtRosbag2, MessageDefinition, MessageDefinitionFormat
from rosbags.rosbag2.metadata import ReaderMetadata, parse_qos

from seg_perception.errors import BagError

if TYPE_CHECKING:
    from collections.abc import Collection, Generator, Iterator

    from rosbags.interfaces import Qos

_FORMATS = {"ros2msg": MessageDefinitionFormat.MSG, "ros2idl": MessageDefinitionFormat.IDL}


class PartialMcapReader:
    """rosbags' storage reader protocol (connections, metadata, messages) over an MCAP file
    that may end in a cut-off record. ``readable_bytes``: where the complete records end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.connections: list[Connection] = []
        self.metadata = ReaderMetadata(0, 2**63 - 1, 0, 0, None, None, None, None)
        self.readable_bytes = 0
        self.damage = ""  # why reading stopped before the end ("" if it did not)

    def open(self) -> None:
        """Scan the file once: its connections, message counts and times. BagError if the file
        does not even start as a ROS 2 MCAP file."""
        schemas: dict[int, Schema] = {}
        conns: dict[int, Connection] = {}
        counts: dict[int, int] = {}
        first, last = 2**63 - 1, 0
        for record in self._records():
            if isinstance(record, Header) and record.profile != "ros2":
                raise BagError(f"{self.path} is an MCAP file of profile {record.profile!r}, not a ROS 2 bag")
            if isinstance(record, Schema):
                schemas[record.id] = record
            elif isinstance(record, Channel) and record.id not in conns:
                conns[record.id] = self._connection(record, schemas.get(record.schema_id))
            elif isinstance(record, Message) and record.channel_id in conns:
                counts[record.channel_id] = counts.get(record.channel_id, 0) + 1
                first, last = min(first, record.log_time), max(last, record.log_time)
        self.connections = [c._replace(msgcount=counts.get(c.id, 0)) for c in conns.values()]
        total = sum(counts.values())
        if total:
            self.metadata = self.metadata._replace(
                duration=last + 1 - first, start_time=first, end_time=last + 1, message_count=total
            )

    def close(self) -> None:
        self.connections = []

    def messages(
        self, connections: Collection[Connection], start: int | None = None, stop: int | None = None
    ) -> Generator[tuple[Connection, int, bytes], None, None]:
        """Messages of ``connections`` in file order (a recorder writes them in arrival order)."""
        by_id = {c.id: c for c in connections}
        lo, hi = start if start is not None else 0, stop if stop is not None else 2**63
        for record in self._records():
            if isinstance(record, Message) and record.channel_id in by_id and lo <= record.log_time < hi:
                yield by_id[record.channel_id], record.log_time, record.data

    def _records(self) -> Iterator[McapRecord]:
        with self.path.open("rb") as file:
            reader = StreamReader(file, validate_crcs=True)
            try:
                for record in reader.records:
                    self.readable_bytes = file.tell()
                    yield record
            except InvalidMagic as err:
                if not self.readable_bytes:
                    raise BagError(f"{self.path} is not an MCAP file ({err})") from err
                self.damage = str(err)
            except EndOfFile:
                # An empty or header-only file is what a recorder killed right after starting a
                # split leaves: it holds nothing, which is not an error.
                at_boundary = file.tell() == self.readable_bytes
                self.damage = "ends after a complete record" if at_boundary else "ends inside a record"
            except Exception as err:
                # Broad on purpose: a damaged record fails in the stream reader or a decompressor
                # with any of several errors; everything before it has been read.
                self.damage = f"{type(err).__name__}: {err}"

    def _connection(self, channel: Channel, schema: Schema | None) -> Connection:
        msgdef = (
            MessageDefinition(_FORMATS.get(schema.encoding, MessageDefinitionFormat.NONE), schema.data.decode())
            if schema is not None
            else MessageDefinition(MessageDefinitionFormat.NONE, "")
        )
        return Connection(
            id=channel.id,
            topic=channel.topic,
            msgtype=schema.name if schema is not None else "",
            msgdef=msgdef,
            digest="",
            msgcount=0,
            ext=ConnectionExtRosbag2(channel.message_encoding, _qos(channel.metadata)),
            owner=self,
        )


def _qos(metadata: dict[str, str]) -> list[Qos]:
    # rosbag2 keeps the recorded QoS in the channel metadata; a foreign writer may not.
    text = metadata.get("offered_qos_profiles", "")
    try:
        return parse_qos(text) if text else []
    except (ValueError, TypeError, KeyError, AttributeError):
        return []
