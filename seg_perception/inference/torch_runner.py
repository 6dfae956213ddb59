"""The torch backend's frame path: decoded frames of any size in, class ids at the model
size out, with the per-frame work on the inference device.

On CUDA, one call does:

1. every frame of the batch is copied once into a persistent pinned host arena (frames of
   one shape and colour order side by side), and the used part of the arena goes to the
   device in one ``non_blocking`` copy on the runner's own stream;
2. :func:`~seg_perception.inference.gpu_preprocess.resize_frames` resizes each group on the
   device into a static uint8 input at the model size;
3. :class:`~seg_perception.models.semantic.SemanticHead` (fp16 when the backend is) runs as a CUDA
   graph captured once per (batch size, model size, with_confidence), all graphs in one
   shared memory pool; eager if a capture fails and CUDA came out of it intact, else a
   BackendError (never a silent fallback on a broken context);
4. class ids (and confidence) are copied ``non_blocking`` into pinned host buffers and an
   event recorded after the copies is waited on before numpy reads them.

Off CUDA the same control flow runs without pinning, streams or graphs (the tests exercise it
on the CPU); the CPU backend itself keeps cv2 pre-processing (faster there, see
``TorchSemanticBackend``). One runner serves one thread at a time (a lock guards the shared
buffers); every call waits for its own results, so buffers are free again when it returns.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np
import numpy.typing as npt
import torch

from seg_perception.errors import BackendError
from seg_perception.inference.base import SemanticOutput
from seg_perception.inference.gpu_preprocess import resize_frames
from seg_perception.io.image import ColorOrder, DecodedImage

if TYPE_CHECKING:
    from torch.cuda import _POOL_HANDLE

    from seg_perception.models.semantic import SemanticHead

log = logging.getLogger(__name__)

_WARMUP_RUNS = 3  # eager runs on a side stream before capture (cuDNN/cuBLAS lazy initialisation)
# torch allows one graph capture at a time per process; runners of different nodes in one
# process (or a later second model) must not capture concurrently.
_CAPTURE_LOCK = threading.Lock()


def cuda_stream(device: torch.device) -> torch.cuda.Stream:
    """A new CUDA stream on ``device``."""
    # torch.cuda.Stream.__new__ has no annotations, so mypy counts the call as untyped.
    return torch.cuda.Stream(device)  # type: ignore[no-untyped-call]


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    classes: torch.Tensor  # the graph's static outputs, rewritten by every replay
    confidence: torch.Tensor


@dataclass(frozen=True)
class _Group:
    """Frames of one shape and colour order, packed one after the other from byte ``offset``
    of the arena."""

    shape: tuple[int, ...]
    order: ColorOrder
    indices: tuple[int, ...]  # their positions in the batch
    offset: int

    @property
    def nbytes(self) -> int:
        return len(self.indices) * int(np.prod(self.shape))


def group_frames(images: Sequence[DecodedImage]) -> list[_Group]:
    """Batch positions grouped by (pixel shape, colour order), laid out one group after the
    other: each group is one (n, H, W[, C]) block of a flat byte arena."""
    by_key: dict[tuple[tuple[int, ...], ColorOrder], list[int]] = {}
    for i, img in enumerate(images):
        if img.pixels.dtype != np.uint8:
            raise TypeError(f"frames must be 8-bit, got {img.pixels.dtype} ({img.order.value})")
        by_key.setdefault((tuple(img.pixels.shape), img.order), []).append(i)
    groups, offset = [], 0
    for (shape, order), indices in by_key.items():
        group = _Group(shape, order, tuple(indices), offset)
        groups.append(group)
        offset += group.nbytes
    return groups


class TorchFrameRunner:
    """Runs :class:`~seg_perception.models.semantic.SemanticHead` modules
    (``heads[with_confidence]``, already on ``device`` in their dtype) on batches of decoded
    frames; see the module docstring.

    ``cuda_graphs``: capture CUDA graphs (default: on CUDA). Ignored off CUDA.
    """

    def __init__(self, heads: Mapping[bool, SemanticHead], device: str, cuda_graphs: bool = True) -> None:
        self.device = torch.device(device)
        self.on_cuda = self.device.type == "cuda"
        self._heads = dict(heads)
        self._use_graphs = cuda_graphs and self.on_cuda
        self._lock = threading.Lock()
        self._host = torch.empty(0, dtype=torch.uint8)  # the frame arena (pinned on CUDA)
        self._dev = self._host  # its device twin (the same tensor off CUDA)
        self._inputs: dict[tuple[int, int, int], torch.Tensor] = {}  # (n, h, w) -> uint8 (n, h, w, 3)
        self._outputs: dict[tuple[str | int, ...], torch.Tensor] = {}  # pinned host outputs by (name, *shape)
        self._graphs: dict[tuple[int, int, int, bool], _Graph] = {}
        self._pool: _POOL_HANDLE | None = None  # the memory pool every captured graph shares
        self._stream: torch.cuda.Stream | None = None
        self._done: torch.cuda.Event | None = None
        if self.on_cuda:
            self._stream = cuda_stream(self.device)
            # torch.cuda.Event.__new__ has no annotations, so mypy counts the call as untyped.
            self._done = torch.cuda.Event()  # type: ignore[no-untyped-call]
            # The weights were copied to the device on the default stream; our stream must
            # not read them before those copies are done.
            torch.cuda.current_stream(self.device).synchronize()

    @property
    def graphs_active(self) -> bool:
        """True while CUDA graphs are in use (False off CUDA, or after a capture failed)."""
        return self._use_graphs

    @property
    def captured(self) -> int:
        """Number of CUDA graphs captured so far."""
        return len(self._graphs)

    # ------------------------------------------------------------------------- entry points
    def run_images(
        self, images: Sequence[DecodedImage], size: tuple[int, int], with_confidence: bool = False
    ) -> SemanticOutput:
        """Decoded frames (uint8 RGB/BGR (H, W, 3) or MONO (H, W), sizes may differ) ->
        uint8 (N, height, width) class ids (+ confidence) at ``size`` = (height, width).
        The arrays are the caller's (never reused by a later call)."""
        height, width = size
        if not images:
            empty = np.zeros((0, height, width), np.uint8)
            return SemanticOutput(empty, empty.copy() if with_confidence else None)
        with self._lock, torch.inference_mode(), self._on_stream():
            try:
                batch = self._input(len(images), height, width)
                self._upload_and_resize(images, batch)
                classes, confidence = self._forward(batch, with_confidence)
                return self._download(classes, confidence, with_confidence)
            except BaseException:
                # Copies may still be in flight from host buffers the next call reuses.
                if self._stream is not None:
                    self._stream.synchronize()
                raise

    def run_batch(self, frames: npt.NDArray[np.uint8], with_confidence: bool = False) -> SemanticOutput:
        """uint8 (N, h, w, 3) RGB already at the model size (the backend contract's ``run``)."""
        if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 (N, H, W, 3), got {frames.dtype} {frames.shape}")
        images = [DecodedImage(f, ColorOrder.RGB) for f in frames]
        return self.run_images(images, (frames.shape[1], frames.shape[2]), with_confidence)

    # ------------------------------------------------------------------------- steps
    @contextlib.contextmanager
    def _on_stream(self) -> Iterator[None]:
        if self._stream is None:
            yield
            return
        with torch.cuda.device(self.device), torch.cuda.stream(self._stream):
            yield

    def _input(self, n: int, height: int, width: int) -> torch.Tensor:
        """The persistent uint8 (n, height, width, 3) model input (a CUDA graph's static input)."""
        key = (n, height, width)
        if key not in self._inputs:
            self._inputs[key] = torch.empty((n, height, width, 3), dtype=torch.uint8, device=self.device)
        return self._inputs[key]

    def _arena(self, nbytes: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(host, device) byte buffers of at least ``nbytes``; grown, never shrunk, so a
        camera set of fixed sizes allocates (and pins: slow) once."""
        if self._host.numel() < nbytes:
            if self.on_cuda:
                self._host = torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)
                self._dev = torch.empty(nbytes, dtype=torch.uint8, device=self.device)
            else:
                self._host = self._dev = torch.empty(nbytes, dtype=torch.uint8)
        return self._host, self._dev

    def _upload_and_resize(self, images: Sequence[DecodedImage], batch: torch.Tensor) -> None:
        groups = group_frames(images)
        total = sum(g.nbytes for g in groups)
        host, dev = self._arena(total)
        host_np = host.numpy()
        for g in groups:
            block = host_np[g.offset : g.offset + g.nbytes].reshape(len(g.indices), *g.shape)
            for j, i in enumerate(g.indices):
                np.copyto(block[j], images[i].pixels)  # reads strided views (padded rows, rgba) too
        if self.on_cuda:
            dev[:total].copy_(host[:total], non_blocking=True)  # the one upload, on our stream
        for g in groups:
            frames = dev[g.offset : g.offset + g.nbytes].view(len(g.indices), *g.shape)
            rgb = resize_frames(frames, (batch.shape[1], batch.shape[2]), g.order)
            for j, i in enumerate(g.indices):
                batch[i].copy_(rgb[j])

    def _forward(self, batch: torch.Tensor, with_confidence: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if self._use_graphs:
            graph = self._graph(batch, with_confidence)
            if graph is not None:
                graph.graph.replay()  # on the current stream: ours
                return graph.classes, graph.confidence
        # nn.Module calls are typed as returning Any; SemanticHead returns (class ids, confidence).
        return cast("tuple[torch.Tensor, torch.Tensor]", self._heads[with_confidence](batch))

    def _graph(self, batch: torch.Tensor, with_confidence: bool) -> _Graph | None:
        """The graph of this input shape, captured on first use (CUDA only). On failure: one
        warning, then eager execution for the runner's lifetime."""
        key = (*batch.shape[:3], with_confidence)
        if key in self._graphs:
            return self._graphs[key]
        head = self._heads[with_confidence]
        try:
            # Warm-up on a side stream, as torch.cuda.graphs requires before capture.
            side = cuda_stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                for _ in range(_WARMUP_RUNS):
                    head(batch)
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            if self._pool is None:
                self._pool = torch.cuda.graph_pool_handle()
            # Captured on our own (non-default) stream, where it is replayed. All graphs share
            # one memory pool, so memory does not grow by a full activation set per batch
            # size. torch calls sharing safe for graphs replayed in capture order; the hazard
            # it guards against is one graph overwriting another's outputs before they are
            # read, and here every replay's outputs are copied out (and waited for) inside the
            # same locked call, before any other graph replays. thread_local: in the combined
            # node the instance model keeps running (and allocating) in another thread on its
            # own stream; under "global" its CUDA calls would fail while we capture.
            log.info("capturing a CUDA graph for batch %s (first batch of this shape)", tuple(batch.shape))
            with (
                _CAPTURE_LOCK,
                torch.cuda.graph(graph, pool=self._pool, stream=self._stream, capture_error_mode="thread_local"),
            ):
                classes, confidence = head(batch)
        except Exception as err:
            # Broad on purpose: a capture fails in many ways (CUDA, unsupported ops); eager
            # execution is safe only where CUDA came out of the capture intact.
            self._use_graphs = False
            self._check_capture_ended(err)
            log.warning(
                "CUDA graph capture failed for batch %s (%s: %s); running the semantic model eagerly",
                tuple(batch.shape),
                type(err).__name__,
                err,
            )
            return None
        self._graphs[key] = _Graph(graph, classes, confidence)
        return self._graphs[key]

    def _check_capture_ended(self, err: Exception) -> None:
        """After a failed capture: raise (no silent eager fallback) unless the stream left
        capture mode and works. A capture that failed after it began can leave the stream
        capturing and torch's allocator routing to the graph pool; eager kernels would then
        fail later, on the serving path, or be recorded into a dead graph."""
        try:
            capturing = torch.cuda.is_current_stream_capturing()
            if not capturing and self._stream is not None:
                self._stream.synchronize()  # raises where the failure left the stream unusable
        except Exception as probe:
            # Broad on purpose: any CUDA error here means the context is not fit to go on eagerly.
            capturing, err = True, probe
        if capturing:
            raise BackendError(
                f"CUDA graph capture failed and left CUDA unusable ({type(err).__name__}: {err}); restart the "
                "node, and if it recurs run the torch backend without CUDA graphs"
            ) from err

    def _download(self, classes: torch.Tensor, confidence: torch.Tensor, with_confidence: bool) -> SemanticOutput:
        if not self.on_cuda:
            return SemanticOutput(classes.numpy(), confidence.numpy() if with_confidence else None)
        host = [self._pinned(classes.shape, "classes")]
        if with_confidence:
            host.append(self._pinned(confidence.shape, "confidence"))
        for dst, src in zip(host, (classes, confidence)):
            dst.copy_(src, non_blocking=True)
        assert self._done is not None and self._stream is not None
        self._done.record(self._stream)
        self._done.synchronize()  # the copies have landed: numpy may read the pinned buffers
        # Copied out of the pinned buffers (~0.1 MB a frame), which the next call overwrites.
        arrays = [h.numpy().copy() for h in host]
        return SemanticOutput(arrays[0], arrays[1] if with_confidence else None)

    def _pinned(self, shape: torch.Size, name: str) -> torch.Tensor:
        key = (name, *shape)
        if key not in self._outputs:
            self._outputs[key] = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
        return self._outputs[key]
