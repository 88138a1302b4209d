"""CPU renderer: landmark rig -> dense warp map -> remap, mouth interior, eyelids, head pose."""

from flowact.render.renderer import Renderer
from flowact.render.rig import Rig, build_rig

__all__ = ["Renderer", "Rig", "build_rig"]
