"""CPU renderer: landmark rig -> dense warp map -> remap, mouth interior, eyelids, head pose."""
