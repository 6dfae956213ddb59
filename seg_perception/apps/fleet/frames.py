"""The read stage: one time window of a drive's bag -> rows, one per camera frame in bag order,
each carrying the frame as raw CDR (compressed frames stay compressed through the object
store) and its ground truth, paired as replay pairs it (camera namespace and header stamp).
The last row of a window is an ``end`` row with its number of frames and, if the bag could
not be opened or broke mid-way, the error: a bad drive is a row, never an exception that
stops the fleet.

A long drive is read as consecutive windows of log time (:func:`survey`), one read task each:
the windows partition the bag's messages, so the drive's frames, taken window after window,
are the frames of one pass in bag order. Ground truth is read :data:`GT_MARGIN_NS` beyond a
window's ends, so a frame near a boundary meets ground truth logged just across it.

Every row has the same columns (:data:`COLUMNS`), so the stages' blocks share one schema.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

from seg_perception.apps.fleet.records import pack
from seg_perception.errors import BagError, ConfigError, SegPerceptionError
from seg_perception.io import bags
from seg_perception.metrics.bags import ground_truth_connections

FRAME = "frame"
END = "end"
GT_IMAGES = ("label_ids", "instance_ids")
GT_MARGIN_NS = 2_000_000_000  # ground truth read this far beyond a window, for frames at its ends


class Survey(NamedTuple):
    """What the driver knows of a drive before the job: its camera frames by the metadata (None
    if the bag does not open: the read stage then says why) and its windows of log time,
    (start, stop) in ns, 0 for the bag's own start or end."""

    frames: int | None
    windows: list[tuple[int, int]]


def new_row(drive: int, kind: str = FRAME, **values: Any) -> dict[str, Any]:
    """A row with every column of the read stage (later stages add their own)."""
    row = {
        "kind": kind,
        "drive": drive,
        "window": 0,
        "seq": 0,
        "topic": "",
        "logtime": 0,
        "msgtype": "",
        "raw": b"",
        "gt_label_ids": b"",
        "gt_instance_ids": b"",
        "condition": "",
        "error": "",
    }
    row.update(values)
    return row


COLUMNS = tuple(new_row(0))


def read_drive(item: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Ray Data ``flat_map`` function: ``item`` = {"drive": index, "path": bag, "condition":
    the manifest's tag, "window": its number, "start"/"stop": its log times (0: open)}. Yields
    the window's frame rows, then its ``end`` row."""
    drive, path, tag = int(item["drive"]), str(item["path"]), str(item["condition"])
    window, start, stop = int(item.get("window", 0)), int(item.get("start", 0)), int(item.get("stop", 0))
    frames = 0
    error = ""
    try:
        for row in _frames(drive, path, tag, start, stop):
            row["window"], row["seq"] = window, frames
            frames += 1
            yield row
    except SegPerceptionError as err:
        error = str(err)
    except Exception as err:  # a drive's fault must not end the fleet: it becomes its end row
        error = f"{type(err).__name__}: {err}"
    yield new_row(drive, END, window=window, seq=frames, error=error)


def _frames(drive: int, path: str, tag: str, start: int = 0, stop: int = 0) -> Iterator[dict[str, Any]]:
    reader = bags.open_bag(path)
    try:
        try:
            cameras = bags.all_camera_connections(reader)
        except BagError as err:
            raise BagError("; ".join([str(err), *reader.truncated_files()])) from None
        namespaces = {bags.camera_namespace(c.topic) for c in cameras}
        gt_conns = ground_truth_connections(reader.connections, namespaces)
        with_condition = {ns for ns, kind in gt_conns.values() if kind == "condition"}
        with_gt = {ns for ns, _ in gt_conns.values()}
        camera_ids = {c.id for c in cameras}
        pending: dict[tuple[str, int], dict[str, Any]] = {}
        order: deque[tuple[str, int]] = deque()  # frames waiting for ground truth, in bag order
        connections = [*cameras, *(c for c in reader.connections if c.id in gt_conns)]
        first = max(start - GT_MARGIN_NS, 0) if start else None
        last = stop + GT_MARGIN_NS if stop else None
        for conn, logtime, raw in bags.read_messages(reader, connections, first, last):
            if conn.id in camera_ids:
                if (start and logtime < start) or (stop and logtime >= stop):
                    continue  # another window's frame, read for the ground truth around it
                ns = bags.camera_namespace(conn.topic)
                data = bytes(raw)  # one copy of the frame, shared by the row and the stamp
                row = new_row(drive, topic=conn.topic, logtime=logtime, msgtype=conn.msgtype, raw=data)
                stamp = _stamp(data, conn.msgtype)
                if ns not in with_gt or stamp is None:  # nothing to pair (a malformed frame: the model stage says so)
                    yield _with_condition(row, tag)
                    continue
                key = (ns, stamp)
                pending.setdefault(key, {})["row"] = row
                order.append(key)
            else:
                ns, kind = gt_conns[conn.id]
                stamp = logtime if kind == "condition" else _stamp(raw, conn.msgtype)
                if stamp is None:
                    raise BagError(f"{conn.topic}: malformed {conn.msgtype} message at log time {logtime}")
                key = (ns, stamp)
                pending.setdefault(key, {})[kind] = raw if kind != "condition" else _condition(raw, conn.msgtype)
            # Frames leave in bag order: the oldest waiting frame first, once its ground truth is in.
            while order and _complete(pending.get(order[0], {}), order[0][0] in with_condition):
                yield _paired(pending.pop(order.popleft()), tag)
        for key in order:  # frames whose ground truth never came: predicted, not scored
            yield _paired(pending.pop(key), tag)
    finally:
        reader.close()


def _stamp(raw: bytes | memoryview, msgtype: str) -> int | None:
    """The header stamp; None for a message that does not deserialise."""
    try:
        return bags.stamp_ns(bags.deserialize(raw if isinstance(raw, bytes) else bytes(raw), msgtype).header)
    except Exception:  # broad on purpose: rosbags fails on malformed CDR with any of several errors
        return None


def _condition(raw: bytes | memoryview, msgtype: str) -> str:
    return str(bags.deserialize(bytes(raw), msgtype).data)


def _complete(entry: Mapping[str, Any], needs_condition: bool) -> bool:
    return "row" in entry and all(k in entry for k in GT_IMAGES) and ("condition" in entry or not needs_condition)


def _paired(entry: Mapping[str, Any], tag: str) -> dict[str, Any]:
    row = dict(entry["row"])
    if all(k in entry for k in GT_IMAGES):
        # Packed: they ride through the model stage to the scorer (a 1280x720 pair: 2.7 MB, packed ~12 kB).
        row["gt_label_ids"] = pack(bytes(entry["label_ids"]))
        row["gt_instance_ids"] = pack(bytes(entry["instance_ids"]))
    row["condition"] = entry.get("condition", "")
    return _with_condition(row, tag)


def _with_condition(row: dict[str, Any], tag: str) -> dict[str, Any]:
    """The frame's own condition (a generated drive's gt/condition) where the bag has one,
    else the drive's manifest tag."""
    if not row["condition"]:
        row["condition"] = tag
    return row


def survey(path: str, window_s: float = 0.0) -> Survey:
    """The drive's frames and its windows of ``window_s`` seconds of log time (0: one window).
    ConfigError for a bag that opens but has no camera: a wrong input, not a damaged drive."""
    try:
        reader = bags.open_bag(path)
    except BagError:
        return Survey(None, [(0, 0)])
    try:
        try:
            cameras = bags.all_camera_connections(reader)
        except BagError as err:
            if reader.truncated_files():  # damaged, not a bag of something else: the read stage says so
                return Survey(None, [(0, 0)])
            raise ConfigError(f"bag {path}: {err}") from None
        frames = sum(c.msgcount for c in cameras)
        step = int(window_s * 1e9)
        if step <= 0 or reader.duration <= step:
            return Survey(frames, [(0, 0)])
        bounds = list(range(reader.start_time + step, reader.start_time + reader.duration, step))
        return Survey(frames, list(zip([0, *bounds], [*bounds, 0])))
    finally:
        reader.close()
