"""Object groups: the label, instance id, night-time emission and texture of what is painted.

Every polygon belongs to a group; the rasteriser writes per-polygon object ids into a map and
lookup tables over those ids give each pixel its label, instance, colour, depth, emission
and texture amplitude.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from seg_perception.synthetic.colours import BLACK, Colour
from seg_perception.synthetic.label_ids import UNLABELED

# Texture classes: (fine noise amplitude, coarse noise amplitude), rows of TEXTURE_AMPLITUDES.
TEXTURE_AMPLITUDES = np.array(
    [
        (0.015, 0.02),  # 0 flat: glass, signs, markings
        (0.07, 0.045),  # 1 road asphalt
        (0.05, 0.05),  # 2 sidewalk paving
        (0.10, 0.24),  # 3 terrain grass
        (0.22, 0.20),  # 4 vegetation
        (0.035, 0.07),  # 5 building walls
        (0.0, 0.0),  # 6 sky (clouds are added separately)
        (0.02, 0.05),  # 7 vehicle paint
        (0.05, 0.05),  # 8 clothes / skin
        (0.03, 0.04),  # 9 metal, concrete
    ],
    np.float32,
)
(
    TEXTURE_FLAT,
    TEXTURE_ROAD,
    TEXTURE_SIDEWALK,
    TEXTURE_TERRAIN,
    TEXTURE_VEGETATION,
    TEXTURE_BUILDING,
    TEXTURE_SKY,
    TEXTURE_VEHICLE,
    TEXTURE_CLOTH,
    TEXTURE_METAL,
) = range(10)


class ObjectRegistry:
    """The groups of one frame; group 0 is "unlabeled"."""

    def __init__(self) -> None:
        self.labels: list[int] = [UNLABELED]
        self.instances: list[int] = [0]
        self.emissions: list[Colour] = [BLACK]
        self.textures: list[int] = [TEXTURE_FLAT]

    def add(self, label: int, instance: int = 0, emission: Sequence[int] = BLACK, texture: int = TEXTURE_FLAT) -> int:
        """A new group: Cityscapes ``label`` id, ``instance`` id (0: stuff, stored as the label id),
        RGB light ``emission`` at night, ``texture`` class. Returns the group number."""
        self.labels.append(label)
        self.instances.append(instance if instance else label)
        red, green, blue = (int(c) for c in emission)
        self.emissions.append((red, green, blue))
        self.textures.append(texture)
        return len(self.labels) - 1
