"""Speech + intent tags + agent state -> one `ControlChunk` per video chunk, on the media clock.

- `vocabulary`: the intent tags a face understands (emotions, gestures) and `parse_tag`;
- `builder`: `ControlBuilder`, the control timeline (audio slices, visemes, expressions, events,
  head pose / blink / gaze from `flowact.motion.procedural`);
- `pacing`: `paced_chunks`, the builder's chunks paced on an injected clock;
- `commands`: the emotion / gesture command messages (JSON) and their validation.
"""

from flowact.control.builder import ControlBuilder
from flowact.control.pacing import paced_chunks
from flowact.control.vocabulary import EMOTIONS, GESTURES, MAX_TAG_CHARS, VOCABULARY, emotion_index, parse_tag

__all__ = [
    "EMOTIONS",
    "GESTURES",
    "MAX_TAG_CHARS",
    "VOCABULARY",
    "ControlBuilder",
    "emotion_index",
    "paced_chunks",
    "parse_tag",
]
